#!/usr/bin/env bash
# The paper's benchmark (`make benchmark`, issues #8 and #17): `radsam bench` on the validation CT
# (the TotalSegmentator example DICOM scan, never trained on) and on synthetic phantoms (never
# trained on: the benchmark's phantom seed differs from training's), in one run on this machine,
# same prompts for every model, for:
# - lite_medsam@-160,240: LiteMedSAM on MedSAM's soft-tissue window; its `reference box` carry is
#   the reference baseline of issue #17 (LiteMedSAM's own 3D inference);
# - radsam:radsam-v1: the RadSAM weights shipped until 2026-12-06 (bench/train_radsam.sh), the
#   previous model's rows; the shipped v7 (models/radsam.safetensors) is v1's decoder with v3's
#   for clicked slices, so its rows without clicks are v1's (its own run beside v1:
#   bench/run_correction_head.sh);
# - radsam:radsam-v4: the candidate (bench/train_radsam_v4.sh: v3's recipe from v3 on a three-window
#   encoder input, soft tissue / RadSAM / lung in R / G / B).
# (radsam-v2's rows are in the run of 2026-12-03, radsam-v3's in that of 2026-12-05, in git history;
# MODELS overrides the list, e.g. adding `--model lite_medsam` for LiteMedSAM on RadSAM's window.)
# Protocols: the paper's (20 uniform clicks, oracle masks) and the CVPR 2025 challenge's (5 centred
# clicks). Known classes (paper Table 3): AMOS's 15 classes.
# Writes bench/results/benchmark/ (OUT= another folder; report.md, cases.csv, speed.csv, drift.csv, clicks.png,
# classes.png, drift.png); resumable: run it again after an interruption. THREADS sets libtorch's
# threads (default: all cores); extra arguments go to `radsam bench` (e.g. --fresh after a
# protocol change, or --model to run one model's units alone).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/validation_split.sh
# The scan's 7 AMOS classes (known) and 7 others (unknown: bowel, vessels, bone, muscle, spinal
# cord), and the phantom's 6 organs and its liver lesion.
classes=$benchmark_classes,$benchmark_phantom_classes
models=${MODELS:---model radsam=models/radsam-v4.safetensors --model radsam=models/radsam-v1.safetensors --model lite_medsam@-160,240}
# shellcheck disable=SC2086
"$bin" bench "${validation_pair[@]}" \
  --phantoms 1 --classes "$classes" --known-classes amos \
  $models --device "${DEVICE:-cpu}" --threads "$threads" \
  --max-clicks 20 --cvpr25-clicks 5 --seed 1 --out "${OUT:-bench/results/benchmark}" "$@"
