#!/usr/bin/env bash
# Model benchmark: image-encoder and decoder milliseconds per slice, Rust (tch) vs the PyTorch
# reference, same machine, same run, same slices, same thread count; outputs compared.
# Usage (via `make bench`): bench/run_model_bench.sh [THREADS]
# Writes bench/results/model_bench.json and bench/results/model_bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
bin=${CARGO_TARGET_DIR:-target}/release/radsam
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
runs=()
for spec in lite_medsam:4:3 mobile_sam:2:2; do
  IFS=: read -r model slices repeats <<< "$spec"
  echo "== $model: PyTorch reference" >&2
  python bench/model_bench.py "$model" "$slices" "$repeats" "$threads" "$tmp/$model.py.json" "$tmp/$model.ref.safetensors" > /dev/null
  echo "== $model: Rust" >&2
  "$bin" bench-model --model "$model" --device cpu --slices "$slices" --repeats "$repeats" --threads "$threads" \
    --compare "$tmp/$model.ref.safetensors" --out "$tmp/$model.rs.json" > /dev/null
  runs+=("$tmp/$model.py.json" "$tmp/$model.rs.json")
done
python bench/model_bench_table.py "${runs[@]}"
