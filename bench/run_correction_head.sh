#!/usr/bin/env bash
# v7 (v1 with v3's decoder as its correction head, bench/compose_radsam_v7.sh) beside v1 in one run
# of the paper's benchmark (`make bench-correction-head`, issue #17): bench/run_benchmark.sh's
# objects, prompts and clicks (20 uniform clicks, the CVPR 2025 protocol's 5), the two models only.
# v7's rows without clicks must equal v1's (the same decoder); the clicks are what differs.
# Writes bench/results/correction_head/ (OUT= elsewhere); resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELS="--model radsam=models/radsam-v1.safetensors --model radsam=${MODEL:-models/radsam-v7.safetensors}" \
  OUT=${OUT:-bench/results/correction_head} exec bash bench/run_benchmark.sh "$@"
