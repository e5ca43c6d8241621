#!/usr/bin/env bash
# Model benchmark: image-encoder and decoder milliseconds per slice, Rust (tch) vs the PyTorch
# reference, same machine, same run, same slices, same thread count; outputs compared.
# The reference runs twice: as is, and with the glibc malloc settings that the Rust binary sets
# for itself (src/allocator.rs), so the table shows where the difference comes from.
# Usage (via `make bench`): bench/run_model_bench.sh [THREADS]
# Writes bench/results/model_bench.json and bench/results/model_bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
bin=${CARGO_TARGET_DIR:-target}/release/radsam
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
malloc_env=(MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=536870912)
runs=()
for spec in lite_medsam:4:3 mobile_sam:2:2; do
  IFS=: read -r model slices repeats <<< "$spec"
  echo "== $model: PyTorch reference" >&2
  python bench/model_bench.py "$model" "$slices" "$repeats" "$threads" "$tmp/$model.py.json" "$tmp/$model.ref.safetensors" > /dev/null
  echo "== $model: PyTorch reference, malloc settings of the Rust binary" >&2
  env "${malloc_env[@]}" python bench/model_bench.py "$model" "$slices" "$repeats" "$threads" "$tmp/$model.pym.json" "$tmp/$model.refm.safetensors" \
    "pytorch-reference + malloc env" > /dev/null
  echo "== $model: Rust" >&2
  "$bin" bench-model --model "$model" --device cpu --slices "$slices" --repeats "$repeats" --threads "$threads" \
    --compare "$tmp/$model.ref.safetensors" --out "$tmp/$model.rs.json" > /dev/null
  runs+=("$tmp/$model.py.json" "$tmp/$model.pym.json" "$tmp/$model.rs.json")
done
python bench/model_bench_table.py "${runs[@]}"
