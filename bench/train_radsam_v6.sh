#!/usr/bin/env bash
# The sixth RadSAM candidate (issue #17; `make train-radsam-v6`): v1 taught to read a box beside a
# carried mask. On the training split, handing v1 the widened box of the previous slice's mask
# beside the mask (`radsam bench --carry-cue box`, bench/results/carry_cue/) held large organs in
# place (heart +13, lung +11) and dragged small vessels into their neighbours (inferior vena cava
# -33): v1 was never trained on that pair. v6 is: half of its mask prompts and half of its carry
# batches also hold the box around the mask, widened as at inference (--mask-box 0.5), so that
# the decoder learns when the box helps. The rest is v3's recipe, run by v3's script (carry
# batches, up to 4 edit steps, half the clicks centred, EMA export, class balance, 5e-5), from v1
# (the best single-prompt propagation so far) on v1's own input window.
# Resumable (run again after a kill); a fresh machine needs only the committed v1 weights.
# Writes runs/train-radsam-v6/ and bench/results/experiments/train_radsam_v6_*.
set -euo pipefail
cd "$(dirname "$0")/.."
INIT=models/radsam-v1.safetensors RUN_DIR=runs/train-radsam-v6 OUT=runs/train-radsam-v6/weights.safetensors \
  RESULTS=bench/results/experiments/train_radsam_v6 exec bash bench/train_radsam_v3.sh --mask-box 0.5 "$@"
