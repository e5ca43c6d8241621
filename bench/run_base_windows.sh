#!/usr/bin/env bash
# The base model on the input windows (issue #17): LiteMedSAM as shipped, on RadSAM's window, on
# MedSAM's soft-tissue window (its authors' preprocessing) and on the three-window input of
# radsam-v4 (soft tissue / RadSAM / lung in R / G / B), in one run: the benchmark's 14 objects of
# the validation CT, its jittered prompts (seed 1), no clicks. Its reference pipeline (LiteMedSAM's
# own 3D inference) says what the input alone does, before any training on it.
# Writes bench/results/base_windows/ (report.md, cases.csv; resumable). Evaluation only.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
"$bin" bench "${validation_pair[@]}" \
  --phantoms 0 --classes "$benchmark_classes" \
  --model "lite_medsam@-160,240/-500,1000/-1350,150" --model lite_medsam --model lite_medsam@-160,240 \
  --device "${DEVICE:-cpu}" --threads "$threads" --max-clicks 0 --cvpr25-clicks 0 --no-oracle \
  --seed 1 --out bench/results/base_windows "$@"
