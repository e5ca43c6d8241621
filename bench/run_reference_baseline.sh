#!/usr/bin/env bash
# The reference baseline of issue #17 (item 4a; `make bench-reference`): on the validation CT (the
# DICOM scan, never trained on), the benchmark's 14 objects, the same jittered prompts as
# `make benchmark` (seed 1), without clicks: volume-level box and point prompts with mask carry, box
# carry and the reference pipeline (LiteMedSAM's own 3D inference: the previous mask's box widened
# by 3 pixels of the 256 grid, the prompted box again after an empty slice), and slice-level
# prompts, for LiteMedSAM as the project feeds it (the RadSAM window), LiteMedSAM on MedSAM's
# soft-tissue window (lite_medsam@-160,240: the reference pipeline's input) and the project's
# RadSAM, in one run. Also the drift curves (Dice by slice along each propagation).
# Extra arguments go to `radsam bench` (e.g. --model radsam=OTHER.safetensors).
# Writes bench/results/reference_baseline/ (report.md, cases.csv, drift.csv, drift.png, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${RADSAM_BIN:-${CARGO_TARGET_DIR:-target}/release/radsam}
mkdir -p runs
python scripts/write_label_names.py runs/total_names.json > /dev/null
classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
classes=$classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
"$bin" bench --pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --classes "$classes" --known-classes amos \
  --model lite_medsam --model lite_medsam@-160,240 --model radsam "$@" --device "${DEVICE:-cpu}" --threads "$threads" \
  --max-clicks 0 --no-oracle --seed 1 --out bench/results/reference_baseline
