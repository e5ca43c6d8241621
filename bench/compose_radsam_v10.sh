#!/usr/bin/env bash
# The tenth RadSAM candidate (issue #17; `make compose-radsam-v10`): no training, v7 (v1's decoder
# for the first prompt and every carried slice, v3's for clicked slices) with radsam-mobile-v1
# (`make train-radsam-mobile`: the RadSAM recipe on MobileSAM) as its point assist: the model that
# answers the user's slice when its prompt is points alone (crate::model docs; PointStart::Assist),
# whose mask v7 then carries. Measured by `make bench-point-assist` (bench/results/point_assist/).
# Deterministic: rebuilds models/radsam-v10.safetensors bit for bit from the two committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
"$bin" compose --weights models/radsam-v7.safetensors --point-assist models/radsam-mobile-v1.safetensors \
  --out "${OUT:-models/radsam-v10.safetensors}"
