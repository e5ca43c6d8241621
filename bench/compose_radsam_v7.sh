#!/usr/bin/env bash
# The seventh RadSAM candidate (issue #17; `make compose-radsam-v7`): no training, two trained
# decoders in one file. v1 (the shipped weights) propagates best from a single prompt and ignores
# correction clicks; v3 (bench/train_radsam_v3.sh) is the candidate whose clicks raise Dice most
# (+7.1 after 20 volume-level clicks, CVPR 2025 72.2, benchmark of 2026-12-05) but reads some
# first boxes worse. Both decode the same frozen LiteMedSAM encoder's embeddings on the same input
# window, so v7 = v1's decoder for the first prompt and every carried slice, v3's as the correction
# head for clicked slices (crate::model docs, `radsam-trainer compose`). Deterministic: rebuilds
# models/radsam-v7.safetensors bit for bit from the two committed files.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
"$bin" compose --weights models/radsam-v1.safetensors --correction models/radsam-v3.safetensors \
  --out "${OUT:-models/radsam-v7.safetensors}"
