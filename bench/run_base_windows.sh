#!/usr/bin/env bash
# The base model on the input windows (issue #17): LiteMedSAM as shipped, on RadSAM's window, on
# MedSAM's soft-tissue window (its authors' preprocessing) and on the three-window input of
# radsam-v4 (soft tissue / RadSAM / lung in R / G / B), in one run: the benchmark's 14 objects of
# the validation CT, its jittered prompts (seed 1), no clicks. Its reference pipeline (LiteMedSAM's
# own 3D inference) says what the input alone does, before any training on it.
# Writes bench/results/base_windows/ (report.md, cases.csv; resumable). Evaluation only.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release/radsam
mkdir -p runs
python scripts/write_label_names.py runs/total_names.json > /dev/null
classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
classes=$classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
"$bin" bench --pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --phantoms 0 --classes "$classes" \
  --model "lite_medsam@-160,240/-500,1000/-1350,150" --model lite_medsam --model lite_medsam@-160,240 \
  --device "${DEVICE:-cpu}" --threads "${THREADS:-$(nproc)}" --max-clicks 0 --cvpr25-clicks 0 --no-oracle \
  --seed 1 --out bench/results/base_windows "$@"
