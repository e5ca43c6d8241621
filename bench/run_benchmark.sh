#!/usr/bin/env bash
# The paper's benchmark (`make benchmark`, issue #8): `radsam bench` on the validation CT (the
# TotalSegmentator example DICOM scan, never trained on) and on synthetic phantoms (never trained
# on: the benchmark's phantom seed differs from training's), for LiteMedSAM as shipped and the
# project's RadSAM, in one run on this machine. Known classes (paper Table 3): AMOS's 15 classes.
# Writes bench/results/benchmark/ (report.md, cases.csv, speed.csv, clicks.png, classes.png);
# resumable: run it again after an interruption.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release/radsam
mkdir -p runs
python scripts/write_label_names.py runs/total_names.json > /dev/null
# The scan's 7 AMOS classes (known) and 7 others (unknown: bowel, vessels, bone, muscle, spinal
# cord), and the phantom's 6 organs.
classes=spleen,liver,stomach,pancreas,adrenal_gland_right,aorta,inferior_vena_cava
classes=$classes,colon,portal_vein_and_splenic_vein,vertebrae_T12,spinal_cord,autochthon_left,humerus_left,rib_left_8
classes=$classes,"phantom liver","phantom spleen","phantom kidney_left","phantom kidney_right","phantom aorta","phantom vertebra"
"$bin" bench --pair "$data/example_ct_dicom=$data/example_seg_dicom.nii.gz" --label-names runs/total_names.json \
  --phantoms 1 --classes "$classes" --known-classes amos \
  --model lite_medsam --model radsam --device "${DEVICE:-cpu}" --threads "$threads" \
  --max-clicks 20 --seed 1 --out bench/results/benchmark
