#!/usr/bin/env bash
# How general a model's start-slice losses are (issue #17; `make bench-box-draws`): the benchmark's
# volume-level box prompt (jittered as the paper's, src/prompt/simulate.rs) drawn with 8 seeds
# instead of one, no clicks, on 8 objects of the validation CT (the four v2 and v3 lost in
# `make benchmark`, seed 1: aorta, spinal cord, inferior vena cava, adrenal gland; and four they did
# not: spleen, liver, colon, a rib), for v4, v3, v1 and the reference baseline (LiteMedSAM on
# MedSAM's window), in one run (MODELS overrides the list). Evaluation only: nothing here is tuned or trained on.
# Writes runs/box_draws/seed-N/ (WORK=; one `radsam bench` each; a finished seed is not run again)
# and bench/results/box_draws.{md,csv} (RESULTS=; Dice per object, model and carry over the draws).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
work=${WORK:-runs/box_draws}
seeds=${SEEDS:-1 2 3 4 5 6 7 8}
models=${MODELS:---model radsam=models/radsam-v4.safetensors --model radsam=models/radsam-v3.safetensors --model radsam=models/radsam-v1.safetensors --model lite_medsam@-160,240}
mkdir -p "$work"
for s in $seeds; do
  [ -f "$work/seed-$s/cases.csv" ] && continue
  echo "box draws: seed $s" >&2
  # shellcheck disable=SC2086
  "$bin" bench "${validation_pair[@]}" \
    --phantoms 0 --classes aorta,spinal_cord,inferior_vena_cava,adrenal_gland_right,spleen,liver,colon,rib_left_8 \
    $models \
    --device "${DEVICE:-cpu}" --threads "$threads" --max-clicks 0 --cvpr25-clicks 0 --no-oracle \
    --seed "$s" --out "$work/seed-$s" > "$work/seed-$s.log" 2>&1
done
results=${RESULTS:-bench/results/box_draws}
python bench/box_draws_table.py "$work" "$results.csv" $seeds > "$results.md"
cat "$results.md"
