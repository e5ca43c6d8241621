#!/usr/bin/env bash
# The fifth RadSAM candidate (issue #17, item 5: keep training while the gains keep coming;
# `make train-radsam-v5`): v4 continued. v4's validation Dice was still rising when its run ended
# (volume box/mask carry 57.0, 59.1, 59.8 after 100, 200, 300 steps;
# bench/results/experiments/train_radsam_v4_log.jsonl), so v5 runs v4's recipe again (same data,
# batches, three-window input, averaged export) from v4's committed weights, at half v4's peak rate
# (5e-5: a second cycle refines what the first learnt rather than relearning it).
# Run 2026-12-06 (47 min, 2-core AMD EPYC): validation 58.7, 59.6, 59.9 after each epoch against v4's
# 59.8; the gains on this recipe have stopped (README, Training). It ran before the phantom had its
# liver lesion: run again now, its 2 training phantoms hold one each.
# Resumable like v4 (run again after a kill); a fresh machine needs only the committed v4 weights.
# Writes runs/train-radsam-v5/ and bench/results/experiments/train_radsam_v5_*.
set -euo pipefail
cd "$(dirname "$0")/.."
INIT=models/radsam-v4.safetensors RUN_DIR=runs/train-radsam-v5 OUT=runs/train-radsam-v5/weights.safetensors \
  RESULTS=bench/results/experiments/train_radsam_v5 LR=5e-5 exec bash bench/train_radsam_v4.sh "$@"
