#!/usr/bin/env bash
# Trains the project's RadSAM decoder, v1 (models/radsam-v1.safetensors), from LiteMedSAM with the RadSAM
# recipe: the recorded, seeded command. Training data: the sample CT (the training split of
# ../shared/assets.md, all ~100 structures) plus 2 synthetic phantoms; validation: the DICOM scan
# (the validation split), 9 abdominal organs, never trained on. Encoder frozen (CPU).
# The shipped models/radsam.safetensors is v7: this decoder with v3's as its correction head
# (`make compose-radsam-v7`). Writes runs/train-radsam/ (resumable: run again after a kill),
# models/radsam-v1.safetensors, and bench/results/train_radsam_{log.jsonl,curves.png}.
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
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam}
out=${OUT:-models/radsam-v1.safetensors}
results=${RESULTS:-bench/results/train_radsam}
"$bin" train --model lite_medsam --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 3 --phantom-views 1 --epochs 8 --steps-per-epoch 100 --batch-size 8 --max-clicks 2 \
  --lr 2e-4 --warmup-steps 30 --seed 1 --run-dir "$run" --out "$out" "$@"
save_curves
