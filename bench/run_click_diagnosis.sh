#!/usr/bin/env bash
# Why clicks do (not) raise Dice (issue #17, item 2; `make bench-clicks`): on the validation CT (the
# DICOM scan, never trained on), the benchmark's 14 objects, every single click on up to 6 slices'
# error (evenly spaced over each object) (positive in a missed region, negative in a false one; uniform and at the centre of the
# largest error component), each alone on the volume-level box result (mask and box carry), for
# LiteMedSAM as shipped, the project's RadSAM (v7) and v1 (the decoder v7 shares, without the
# correction head) in one run: the Dice of the slice and of the object before and after. Extra
# arguments go to `radsam bench` (e.g. another --model NAME=WEIGHTS).
# Writes bench/results/click_diagnosis/click_diagnosis.{csv,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
"$bin" bench --diagnose-clicks "${validation_pair[@]}" \
  --classes "$benchmark_classes" --model lite_medsam --model radsam --model radsam=models/radsam-v1.safetensors "$@" --device "${DEVICE:-cpu}" --threads "$threads" \
  --seed 1 --out bench/results/click_diagnosis
