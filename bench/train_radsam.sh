#!/usr/bin/env bash
# Trains the project's RadSAM weights (models/radsam.safetensors) from LiteMedSAM with the RadSAM
# recipe: the recorded, seeded command. Training data: the sample CT (the training split of
# ../shared/assets.md, all ~100 structures) plus 2 synthetic phantoms; validation: the DICOM scan
# (the validation split), 9 abdominal organs, never trained on. Encoder frozen (CPU).
# Writes runs/train-radsam/ (resumable: run again after a kill), models/radsam.safetensors, and
# bench/results/train_radsam_{log.jsonl,curves.png}.
# Experiments: extra arguments go to the trainer, and RUN_DIR, OUT (the weights) and RESULTS (the
# log and curves' prefix) keep them apart from the recorded run, e.g. the propagation-training
# experiment of bench/results/experiments/:
#   RUN_DIR=runs/train-radsam-carry OUT=runs/train-radsam-carry/weights.safetensors \
#   RESULTS=bench/results/experiments/train_radsam_carry bash bench/train_radsam.sh --carry-steps 3 --carry-fraction 0.3
# and the zoom-out + weight-average experiment (train_radsam_zoom_ema_*):
#   RUN_DIR=runs/train-radsam-v2 OUT=runs/train-radsam-v2/weights.safetensors \
#   RESULTS=bench/results/experiments/train_radsam_zoom_ema bash bench/train_radsam.sh --max-zoom-out 0.3 --ema-decay 0.99
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
run=${RUN_DIR:-runs/train-radsam}
out=${OUT:-models/radsam.safetensors}
results=${RESULTS:-bench/results/train_radsam}
mkdir -p runs models
python scripts/write_label_names.py runs/total_names.json
"$bin" train --model lite_medsam --device "${DEVICE:-cpu}" \
  --pair "$data/example_ct.nii.gz=$data/example_seg_fast_force_split.nii.gz" --phantoms 2 \
  --val-pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --val-classes spleen,liver,stomach,pancreas,adrenal_gland_right,colon,aorta,inferior_vena_cava,portal_vein_and_splenic_vein \
  --views 3 --phantom-views 1 --epochs 8 --steps-per-epoch 100 --batch-size 8 --max-clicks 2 \
  --lr 2e-4 --warmup-steps 30 --seed 1 --run-dir "$run" --out "$out" "$@"
cp "$run/log.jsonl" "${results}_log.jsonl"
python scripts/plot_training.py "$run/log.jsonl" "${results}_curves.png"
