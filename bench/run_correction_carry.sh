#!/usr/bin/env bash
# Which head carries the slices re-propagated from a click (`make bench-correction-carry`, issue
# #17): v7's propagation head (v1's decoder) or its correction head (v3's, which answers the clicked
# slice either way; Segmenter::with_correction_carry). Measured on the validation CT after v7
# shipped (bench/results/correction_head_carry), so decided here on data neither decoder saw:
# synthetic phantoms of another seed than training's (1: phantoms 1001, 1002) and the benchmark's
# (100), 3 of them (PHANTOMS=), 21 objects; the paper's 20 uniform clicks and the CVPR 2025
# protocol's 5; same prompts and click streams (seed 1) in both runs; no oracle runs. About 6 min
# per phantom and run on 2 cores (35 min in all). Writes bench/results/correction_carry/
# {propagation-head,correction-head}/ and the table, README.md (bench/compare_runs.py); resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/correction_carry}
for head in propagation-head correction-head; do
  carry=false
  [ "$head" = correction-head ] && carry=true
  "$bin" bench --phantoms "${PHANTOMS:-3}" --phantom-seed 7 --model "radsam=${MODEL:-models/radsam-v7.safetensors}" \
    --device "${DEVICE:-cpu}" --threads "$threads" --max-clicks 20 --cvpr25-clicks 5 --seed 1 --no-oracle \
    --correction-carry "$carry" --out "$results/$head" "$@"
done
python3 bench/compare_runs.py "Slices re-propagated from a click: carried by the propagation head or the correction head (phantoms, seed 7, v7)" \
  "make bench-correction-carry (bench/run_correction_carry.sh)" "$results/README.md" \
  "propagation head=$results/propagation-head" "correction head=$results/correction-head"
