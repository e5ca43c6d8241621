#!/usr/bin/env bash
# The eighth RadSAM candidate (issue #17; `make compose-radsam-v8`): v7's layout, v1's decoder for
# the first prompt and every carried slice, with the correction head trained for negative clicks
# (bench/train_radsam_v8.sh) in place of v3's. Deterministic from v1 and the trained head.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
"$bin" compose --weights models/radsam-v1.safetensors --correction "${HEAD:-runs/train-radsam-v8/weights.safetensors}" \
  --out "${OUT:-models/radsam-v8.safetensors}"
