#!/usr/bin/env bash
# Does the correction head trained for negative clicks (v8, bench/train_radsam_v8.sh then
# compose_radsam_v8.sh) edit better than v7's (v3)? Issue #17; `make bench-negative-clicks`. Measured
# on unseen phantoms only (seed 7: training draws 1001-1002, the benchmark's phantoms 1100+), so
# that the choice is not made on the validation CT: (1) the single-click diagnosis (each positive
# or negative click alone on its slice's error, uniform and centred, on 3 slices per object), (2) the
# paper's protocol with 20 uniform clicks and the CVPR 2025 one (5 centred clicks), v7 and v8 in one
# run, same prompts and clicks. Extra arguments go to both `radsam bench` calls.
# Writes bench/results/negative_clicks/{diagnosis,protocol}/ and README.md (v7 against v8, per object).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/negative_clicks}
v8=${MODEL:-models/radsam-v8.safetensors}
if [ ! -f "$v8" ]; then
  echo "$v8 is missing: its weights are not committed; build it with make train-radsam-v8 compose-radsam-v8 (about 65 min on 2 cores)" >&2
  exit 1
fi
models=(--model radsam=models/radsam-v7.safetensors --model "radsam=$v8")
phantoms=(--phantoms "${PHANTOMS:-3}" --phantom-seed 7)
"$bin" bench --diagnose-clicks --diagnose-slices 3 "${phantoms[@]}" "${models[@]}" \
  --device "${DEVICE:-cpu}" --threads "$threads" --seed 1 --out "$results/diagnosis" "$@"
"$bin" bench "${phantoms[@]}" "${models[@]}" --device "${DEVICE:-cpu}" --threads "$threads" \
  --max-clicks 20 --cvpr25-clicks 5 --seed 1 --no-oracle --out "$results/protocol" "$@"
python3 bench/compare_runs.py "Correction heads: v7 (v3's) and v8 (trained for negative clicks), 3 unseen phantoms (seed 7)" \
  "make bench-negative-clicks (bench/run_negative_clicks.sh)" "$results/README.md" \
  "v7=$results/protocol#radsam:radsam-v7" "v8=$results/protocol#radsam:radsam-v8"
