#!/usr/bin/env bash
# How should the user's slice be answered when its prompt is a single point (issue #17: volume-level
# point 51.1, target 65)? `radsam bench --point-start` (src/segment/propagate.rs, PointStart):
# primary (the decoder's primary mask, as before), best-iou (the secondary mask with the best
# predicted IoU, SAM's answer to one point) or box (the primary mask's box joins the point and the
# slice is decoded again). `make bench-point-start`.
# v7, same prompts. (1) STAGE=phantoms: the three side by side on 3 unseen phantoms (seed 7:
# training draws 1001-1002, the benchmark's phantoms 1100+), without clicks (a box prompt is not
# affected; the choice is made here, not on the validation CT): protocol-{primary,best_iou,box}/ and
# README.md. (2) STAGE=validation, for a setting that beat primary on the phantoms: the benchmark's
# 21 objects (bench/run_benchmark.sh, no oracle, the negative erase on as in jobs, 20 clicks and
# the CVPR 2025 protocol), primary against the setting named by CANDIDATE (default box):
# validation-{primary,CANDIDATE}/ and validation.md. Default: both stages. One libtorch thread per
# run (THREADS= overrides); logs beside the results.
# Result (2026-12-07, README.md): both lose on the phantoms (volume point with mask carry 73.7 ->
# 70.5 and 66.4), so the validation stage was not run and jobs keep the primary mask.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/point_start}
model=${MODEL:-models/radsam-v7.safetensors}
candidate=${CANDIDATE:-box}
stage=${STAGE:-all}
mkdir -p "$results"

# Runs `$1 NAME --point-start NAME` for each NAME in $2 (space-separated) side by side, logs in
# $results/NAME.log; fails if any fails.
side_by_side() {
  local run=$1 names=$2 status=0 pids=() name
  for name in $names; do
    "$run" "$name" --point-start "$name" > "$results/$name.log" 2>&1 &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "a run failed: see $results/*.log" >&2; status=1; }
  done
  return "$status"
}

if [ "$stage" != validation ]; then
  phantom_run() { unseen_phantoms_run "$model" "$results/protocol-$1" "${@:2}"; }
  side_by_side phantom_run "primary best_iou box"
  python3 bench/compare_runs.py --prompt point \
    "A point alone: the primary mask, the best predicted IoU, or the point's box (phantoms, seed 7, v7)" \
    "make bench-point-start (bench/run_point_start.sh)" "$results/README.md" \
    "primary=$results/protocol-primary" "best_iou=$results/protocol-best_iou" "box=$results/protocol-box"
fi

[ "$stage" = phantoms ] && exit 0
validation_run() {
  MODELS="--model radsam=$model" OUT="$results/validation-$1" THREADS=${THREADS:-1} \
    bash bench/run_benchmark.sh --no-oracle --negative-erase "${@:2}"
}
side_by_side validation_run "primary $candidate"
python3 bench/compare_runs.py --prompt point \
  "A point alone: the primary mask or $candidate (the benchmark's 21 objects, v7, negative erase on)" \
  "make bench-point-start (bench/run_point_start.sh)" "$results/validation.md" \
  "primary=$results/validation-primary" "$candidate=$results/validation-$candidate"
