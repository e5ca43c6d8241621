#!/usr/bin/env bash
# A trained candidate beside the shipped v1 on the validation CT, volume-level prompts without clicks
# (`make bench-candidate MODEL=... [CUE=box]`, issue #17): the quick look before a full
# `make benchmark` (which adds 20 clicks, the CVPR 2025 protocol and the reference baseline, ~46
# min). Same objects as the benchmark (14 structures of the validation CT plus 7 of a phantom), same
# prompts (seed 1), so its v1 rows equal the benchmark's. CUE= is what mask carry hands on besides
# the mask (`radsam bench --carry-cue`, chosen on the training split with `make bench-carry-cue`,
# never here); with a cue, the candidate runs alone (v1's rows are those without it).
# Writes $RESULTS (default bench/results/candidate/<weights' name>[-<cue>]/).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
model=${MODEL:?MODEL=path/to/weights.safetensors}
cue=${CUE:-mask_only}
name=$(basename "$model" .safetensors)
[ "$name" = weights ] && name=$(basename "$(dirname "$model")")
results=${RESULTS:-bench/results/candidate/$name$([ "$cue" = mask_only ] || echo "-$cue")}
classes=$benchmark_classes,$benchmark_phantom_classes
models=(--model "radsam=$model")
[ "$cue" = mask_only ] && models+=(--model radsam=models/radsam-v1.safetensors)
"$bin" bench "${validation_pair[@]}" --phantoms 1 --classes "$classes" --known-classes amos "${models[@]}" \
  --device "${DEVICE:-cpu}" --threads "$threads" --max-clicks 0 --cvpr25-clicks 0 --no-oracle \
  --carry-cue "$cue" --seed 1 --out "$results" "$@"
