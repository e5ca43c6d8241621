#!/usr/bin/env bash
# How much of RadSAM's error is the simulated prompt's? (issue #17; `make bench-tight-prompts`)
# The benchmark's 21 objects (the validation CT's 14 and the phantom's 7), no clicks, two runs side
# by side that differ only in the prompt: the paper's simulated one (a box with each side moved by
# -5..+20 px, a random interior point) and the exact one (`--prompts tight`: the object's box, its
# deepest point). The gap is what a better first box could ever win; what is left under the exact
# box is the model's. MODEL: the weights (default v7). Writes bench/results/tight_prompts/.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/tight_prompts}
model=${MODEL:-models/radsam-v7.safetensors}
mkdir -p "$results"
run() {
  "$bin" bench "${benchmark_objects[@]}" --model "radsam=$model" --device "${DEVICE:-cpu}" --threads "${THREADS:-1}" --max-clicks 0 --cvpr25-clicks 0 \
    --seed 1 --no-oracle --prompts "$1" --out "$results/$1" > "$results/$1.log" 2>&1
}
run simulated &
simulated=$!
run tight &
tight=$!
status=0
wait "$simulated" || { echo "the simulated-prompt run failed: $results/simulated.log" >&2; status=1; }
wait "$tight" || { echo "the exact-prompt run failed: $results/tight.log" >&2; status=1; }
[ "$status" = 0 ] || exit 1
rm -rf "$results"/*/units
python3 bench/compare_runs.py "Simulated against exact prompts (the benchmark's 21 objects, $(basename "$model" .safetensors))" \
  "make bench-tight-prompts (bench/run_tight_prompts.sh)" "$results/README.md" \
  "simulated=$results/simulated" "exact=$results/tight"
