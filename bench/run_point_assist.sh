#!/usr/bin/env bash
# A point alone answered by another model (issue #17: volume-level point 51.1, target 65;
# `make bench-point-assist`). radsam-mobile-v1 (the RadSAM recipe on MobileSAM, not shipped: it
# loses 9.5 on the headline box) reads a lone point far better than v7 (slice-level point 68.3 vs
# 58.1, bench/results/mobile_sam/), while v7 carries a mask best. `radsam bench --point-start
# assist --point-assist MODEL` (src/segment/propagate.rs, PointStart::Assist): the assist answers
# each slice prompted by points alone (it encodes only those slices) and v7 carries its mask on
# and takes the clicks. Box prompts are unaffected.
# (1) STAGE=phantoms: primary vs assist on 3 unseen phantoms (seed 7), no clicks: the decision
# is made here, not on the validation CT (protocol-{primary,assist}/, README.md). (2)
# STAGE=validation: the benchmark's 21 objects (bench/run_benchmark.sh: 20 clicks, the CVPR 2025
# protocol, the negative erase on as in jobs, no oracle), primary vs assist
# (validation-{primary,assist}/, validation.md). Default: both stages. One libtorch thread per run
# (THREADS= overrides), side by side; logs beside the results. ASSIST= another assist model spec.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/point_assist}
model=${MODEL:-models/radsam-v7.safetensors}
assist=${ASSIST:-mobile_sam=models/radsam-mobile-v1.safetensors}
stage=${STAGE:-all}
mkdir -p "$results"

# Runs `$1 primary` and `$1 assist --point-start assist --point-assist $assist` side by side, logs
# in $results/{primary,assist}.log (prefixed by $2); fails if either fails.
side_by_side() {
  local run=$1 prefix=$2 status=0
  "$run" primary > "$results/${prefix}primary.log" 2>&1 &
  local primary=$!
  "$run" assist --point-start assist --point-assist "$assist" > "$results/${prefix}assist.log" 2>&1 &
  local assisted=$!
  wait "$primary" || { echo "the primary run failed: $results/${prefix}primary.log" >&2; status=1; }
  wait "$assisted" || { echo "the assisted run failed: $results/${prefix}assist.log" >&2; status=1; }
  return "$status"
}

if [ "$stage" != validation ]; then
  phantom_run() { unseen_phantoms_run "$model" "$results/protocol-$1" "${@:2}"; }
  side_by_side phantom_run ""
  python3 bench/compare_runs.py --prompt point \
    "A point alone: v7's primary mask or the answer of $assist (phantoms, seed 7)" \
    "make bench-point-assist (bench/run_point_assist.sh)" "$results/README.md" \
    "primary=$results/protocol-primary" "assist=$results/protocol-assist"
fi

[ "$stage" = phantoms ] && exit 0
validation_run() {
  MODELS="--model radsam=$model" OUT="$results/validation-$1" THREADS=${THREADS:-1} \
    bash bench/run_benchmark.sh --no-oracle --negative-erase "${@:2}"
}
side_by_side validation_run validation-
python3 bench/compare_runs.py --prompt point \
  "A point alone: v7's primary mask or the answer of $assist (the benchmark's 21 objects, negative erase on)" \
  "make bench-point-assist (bench/run_point_assist.sh)" "$results/validation.md" \
  "primary=$results/validation-primary" "assist=$results/validation-assist"
rm -rf "$results"/*/units
