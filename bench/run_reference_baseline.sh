#!/usr/bin/env bash
# The reference baseline of issue #17 (item 4a; `make bench-reference`): on the validation CT (the
# DICOM scan, never trained on), the benchmark's 14 objects, the same jittered prompts as
# `make benchmark` (seed 1), without clicks: volume-level box and point prompts with mask carry, box
# carry and the reference pipeline (LiteMedSAM's own 3D inference: the previous mask's box widened
# by 3 pixels of the 256 grid, the prompted box again after an empty slice), and slice-level
# prompts, for LiteMedSAM as the project feeds it (the RadSAM window), LiteMedSAM on MedSAM's
# soft-tissue window (lite_medsam@-160,240: the reference pipeline's input) and the project's
# RadSAM, in one run. Also the drift curves (Dice by slice along each propagation).
# Extra arguments go to `radsam bench` (e.g. --model radsam=OTHER.safetensors).
# Writes bench/results/reference_baseline/ (report.md, cases.csv, drift.csv, drift.png, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
"$bin" bench "${validation_pair[@]}" \
  --classes "$benchmark_classes" --known-classes amos \
  --model lite_medsam --model lite_medsam@-160,240 --model radsam "$@" --device "${DEVICE:-cpu}" --threads "$threads" \
  --max-clicks 0 --no-oracle --seed 1 --out bench/results/reference_baseline
