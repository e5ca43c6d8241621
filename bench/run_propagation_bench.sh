#!/usr/bin/env bash
# Propagation benchmark on the sample CT (`make bench-propagation`): the paper's protocol per
# organ (Dice: volume-level with mask vs box carry, slice-level, after 5/10/20 clicks) with the
# shipped LiteMedSAM weights, and a 100-slice box-carry propagation timed against the PyTorch
# reference doing the same in the same run, same threads. Writes bench/results/propagation_bench.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
bin=${CARGO_TARGET_DIR:-target}/release/radsam
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "== PyTorch reference: 100-slice box-carry propagation" >&2
python bench/propagation_reference.py 20 12 111 "$threads" "$tmp/ref.json" "$tmp/ref_mask.npy"
echo "== Rust: organs and the same propagation" >&2
"$bin" bench-propagation --model lite_medsam --device cpu --threads "$threads" --reference-run "$tmp/ref.json" "$tmp/ref_mask.npy" \
  --out bench/results/propagation_bench.json > /dev/null
python bench/propagation_table.py bench/results/propagation_bench.json
