#!/usr/bin/env bash
# What the model does with the point assist's answer (issue #17: volume-level point 62.9 with v10,
# target 65; `make bench-assist-variants`). Three ways on 3 unseen phantoms (seed 7), no clicks,
# side by side, one libtorch thread each: `assist` (v10's way: the assist's mask stands and the
# model carries it on), `refine` (the model decodes the prompted slice once more from the point and
# the assist's mask, Segmenter::with_refinement, which also refines box-prompted slices) and
# `assist_box` (the assist's mask's bounding box joins the point and the model decodes the slice
# from both, PointStart::AssistBox). The decision is made here, not on the validation CT
# (README.md). ASSIST= another assist model spec; OUT= another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/assist_variants}
model=${MODEL:-models/radsam-v7.safetensors}
assist=${ASSIST:-mobile_sam=models/radsam-mobile-v1.safetensors}
mkdir -p "$results"

run_variant() {
  unseen_phantoms_run "$model" "$results/$1" --point-assist "$assist" "${@:2}" > "$results/$1.log" 2>&1
}
run_variant assist --point-start assist &
first=$!
run_variant refine --point-start assist --refine-passes 1 &
second=$!
run_variant assist_box --point-start assist-box &
third=$!
status=0
for pid in $first $second $third; do wait "$pid" || status=1; done
[ "$status" = 0 ] || { echo "a run failed: $results/*.log" >&2; exit 1; }
python3 bench/compare_runs.py --prompt point \
  "The point assist's answer: kept, refined by the model, or its box given to the model (phantoms, seed 7)" \
  "make bench-assist-variants (bench/run_assist_variants.sh)" "$results/README.md" \
  "assist=$results/assist" "refine=$results/refine" "assist_box=$results/assist_box"
rm -rf "$results"/*/units
