#!/usr/bin/env bash
# MobileSAM beside the shipped RadSAM (issue #17; `make bench-mobile-sam`): the benchmark's 21
# objects (the validation CT's 14 and the phantom's 7), the benchmark's prompts (seed 1), no
# clicks. Models: MobileSAM as fetched (natural images; its encoder sees a slice at 1024 x 1024,
# LiteMedSAM's at 256 x 256), the shipped RadSAM (v7: without clicks its rows are v1's) and, with
# CANDIDATE=path, a RadSAM fine-tune of MobileSAM (`make train-radsam-mobile`). Quick look, as
# `make bench-candidate`; a full `make benchmark` adds clicks. Writes bench/results/mobile_sam/.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/mobile_sam}
models=(--model mobile_sam --model radsam=models/radsam.safetensors)
[ -n "${CANDIDATE:-}" ] && models+=(--model "mobile_sam=$CANDIDATE")
"$bin" bench "${benchmark_objects[@]}" --known-classes amos "${models[@]}" --device "${DEVICE:-cpu}" --threads "$threads" --max-clicks 0 --cvpr25-clicks 0 \
  --no-oracle --seed 1 --out "$results" "$@"
rm -rf "$results/units"
