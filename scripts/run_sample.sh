#!/usr/bin/env bash
# The main job on the sample CT (`make run`): LiteMedSAM on the liver's slices of the sample scan,
# prompted with the box of the reference label on each slice; masks, logits, IoU and Dice out.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
out=${OUT:-runs/sample}
bin=${CARGO_TARGET_DIR:-target}/release/radsam
"$bin" predict --model lite_medsam --volume "$data/example_ct.nii.gz" \
  --reference "$data/example_seg_fast_force_split.nii.gz" --label 5 --prompt-from-reference box \
  --slices 90,95,100,106,110 --out "$out"
echo "main job done: $out/mask.nii.gz, $out/predictions.json"
