#!/usr/bin/env bash
# Does taking a negative click's region out of its slice's mask prompt (src/segment/negative_erase.rs,
# `radsam bench --negative-erase`; on by default in jobs since this measurement) make negative
# clicks work? Issue #17; `make bench-negative-erase`.
# v7, the erase off and on, same prompts and clicks, measured on unseen phantoms only (seed 7:
# training draws 1001-1002, the benchmark's phantoms 1100+), so that the choice is not made on the
# validation CT: (1) the single-click diagnosis (each click alone on its slice's error, uniform and
# centred, 3 slices per object), (2) the paper's protocol with 20 uniform clicks and the CVPR 2025
# one (5 centred clicks). The two settings run side by side, one libtorch thread each (THREADS=
# overrides); logs in $results/{off,on}.log. Writes bench/results/negative_erase/{diagnosis,protocol}-
# {off,on}/ and README.md (off against on, per object, bench/compare_runs.py); the protocols resume.
# Then (3) the benchmark's 21 objects (the validation CT and the benchmark's phantom,
# bench/run_benchmark.sh, no oracle runs), both settings side by side: validation-{off,on}/ and
# validation.md. STAGE=phantoms or STAGE=validation runs one part alone (default: both).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
results=${OUT:-bench/results/negative_erase}
model=${MODEL:-models/radsam-v7.safetensors}
phantoms=(--phantoms "${PHANTOMS:-3}" --phantom-seed 7)
mkdir -p "$results"
stage=${STAGE:-all}
one_setting() {
  local name=$1
  shift
  # The diagnosis does not resume: a finished one is kept (delete the folder to run it again).
  [ -f "$results/diagnosis-$name/click_diagnosis.md" ] ||
    "$bin" bench --diagnose-clicks --diagnose-slices 3 "${phantoms[@]}" --model "radsam=$model" \
      --device "${DEVICE:-cpu}" --threads "${THREADS:-1}" --seed 1 --out "$results/diagnosis-$name" "$@"
  "$bin" bench "${phantoms[@]}" --model "radsam=$model" --device "${DEVICE:-cpu}" --threads "${THREADS:-1}" \
    --max-clicks 20 --cvpr25-clicks 5 --seed 1 --no-oracle --out "$results/protocol-$name" "$@"
}
# Runs `$1 off --negative-erase false ARGS` and `$1 on --negative-erase true ARGS` side by side,
# logs in $results/$2off.log and $results/$2on.log; fails if either fails.
side_by_side() {
  local run=$1 log=$results/$2
  shift 2
  "$run" off --negative-erase false "$@" > "${log}off.log" 2>&1 &
  local off=$!
  "$run" on --negative-erase true "$@" > "${log}on.log" 2>&1 &
  local on=$! status=0
  wait "$off" || { echo "the run without the erase failed: ${log}off.log" >&2; status=1; }
  wait "$on" || { echo "the run with the erase failed: ${log}on.log" >&2; status=1; }
  return "$status"
}
if [ "$stage" != validation ]; then
  side_by_side one_setting "" "$@"
  python3 bench/compare_runs.py "Negative clicks: the mask prompt as it was or less the clicked region (phantoms, seed 7, v7)" \
    "make bench-negative-erase (bench/run_negative_erase.sh)" "$results/README.md" \
    "erase off=$results/protocol-off" "erase on=$results/protocol-on"
  # The single-click diagnosis of both settings, mask carry (the erase does nothing with box carry).
  {
    echo
    echo "## Single clicks, mask carry (diagnosis-off/, diagnosis-on/: each click alone, 3 slices per object)"
    echo
    grep -m1 '^| model |' "$results/diagnosis-off/click_diagnosis.md" | sed 's/^| model |/| erase |/'
    grep -m1 '^|---' "$results/diagnosis-off/click_diagnosis.md"
    for name in off on; do
      grep '^| [^|]* | mask |' "$results/diagnosis-$name/click_diagnosis.md" | sed "s/^| [^|]* |/| $name |/"
    done
  } >> "$results/README.md"
fi

[ "$stage" = phantoms ] && exit 0
validation_run() {
  MODELS="--model radsam=$model" OUT="$results/validation-$1" THREADS=${THREADS:-1} bash bench/run_benchmark.sh --no-oracle "${@:2}"
}
side_by_side validation_run validation- "$@"
python3 bench/compare_runs.py "Negative clicks: the mask prompt as it was or less the clicked region (the benchmark's 21 objects, v7)" \
  "make bench-negative-erase (bench/run_negative_erase.sh)" "$results/validation.md" \
  "erase off=$results/validation-off" "erase on=$results/validation-on"
