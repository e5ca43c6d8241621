#!/usr/bin/env bash
# Why clicks do (not) raise Dice (issue #17, item 2; `make bench-clicks`): on the validation CT (the
# DICOM scan, never trained on), the benchmark's 14 objects, every single click on up to 6 slices'
# error (evenly spaced over each object) (positive in a missed region, negative in a false one; uniform and at the centre of the
# largest error component), each alone on the volume-level box result (mask and box carry), for
# LiteMedSAM as shipped and the project's RadSAM in one run: the Dice of the slice and of the object
# before and after. Extra arguments go to `radsam bench` (e.g. another --model NAME=WEIGHTS).
# Writes bench/results/click_diagnosis/click_diagnosis.{csv,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-$(nproc)}
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${RADSAM_BIN:-${CARGO_TARGET_DIR:-target}/release/radsam}
mkdir -p runs
python scripts/write_label_names.py runs/total_names.json > /dev/null
classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
classes=$classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
"$bin" bench --diagnose-clicks --pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --classes "$classes" --model lite_medsam --model radsam "$@" --device "${DEVICE:-cpu}" --threads "$threads" \
  --seed 1 --out bench/results/click_diagnosis
