#!/usr/bin/env bash
# Mask carry averaged with the reference pipeline (`make bench-carry-ensemble`, issue #17;
# CarryCue::Ensemble, src/segment/propagate.rs): each mask-carried slice is decoded a second time
# from the previous mask's widened box, as LiteMedSAM's reference pipeline decodes it, and keeps the
# mean of the two answers' probabilities. Chosen on the training split first (`CUES=ensemble make
# bench-carry-cue`, bench/results/carry_cue_ensemble/); here the shipped model as jobs run it
# (models/radsam.safetensors: v1's decoder, v3's correction head, radsam-mobile-v1's point assist;
# the negative erase on) on the benchmark's 21 objects (bench/run_benchmark.sh: 20 uniform clicks,
# the CVPR 2025 protocol's 5, no oracle), the mask alone and the ensemble side by side, one libtorch
# thread each (THREADS= overrides), same prompts and clicks. Writes $OUT (default
# bench/results/carry_ensemble/): validation-{mask_only,ensemble}/, their logs, validation.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/carry_ensemble}
model=${MODEL:-models/radsam.safetensors}
mkdir -p "$results"
validation_run() {
  MODELS="--model radsam=$model" OUT="$results/validation-$1" THREADS=${THREADS:-1} \
    bash bench/run_benchmark.sh --no-oracle --negative-erase --point-start assist --carry-cue "$1"
}
status=0
validation_run mask_only > "$results/validation-mask_only.log" 2>&1 &
alone=$!
validation_run ensemble > "$results/validation-ensemble.log" 2>&1 &
ensemble=$!
wait "$alone" || { echo "the mask-alone run failed: $results/validation-mask_only.log" >&2; status=1; }
wait "$ensemble" || { echo "the ensemble run failed: $results/validation-ensemble.log" >&2; status=1; }
[ "$status" = 0 ] || exit 1
python3 bench/compare_runs.py \
  "Mask carry alone or averaged with the reference pipeline ($(basename "$model"), the benchmark's 21 objects, negative erase and point assist on)" \
  "make bench-carry-ensemble (bench/run_carry_ensemble.sh)" "$results/validation.md" \
  "mask_only=$results/validation-mask_only" "ensemble=$results/validation-ensemble"
rm -rf "$results"/*/units
