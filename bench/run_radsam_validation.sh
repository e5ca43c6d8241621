#!/usr/bin/env bash
# The validation table of issue #5 (`make bench-radsam`): on the validation CT (the DICOM scan,
# never trained on), 9 abdominal organs, the paper's protocol (volume-level Dice with mask carry vs
# box carry from a box or a point on the largest slice + true boundaries; slice-level box and
# point; Dice after 5/10/20 simulated clicks) for LiteMedSAM as shipped and for the project's
# RadSAM (models/radsam.safetensors), in the same run on the same machine.
# Writes bench/results/radsam_validation.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-$(nproc)}
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release/radsam
organs=spleen=1,liver=5,stomach=6,pancreas=7,adrenal_gland_right=8,colon=20,aorta=52,inferior_vena_cava=63,portal_vein_and_splenic_vein=64
out=bench/results
run() { # model, click carry
  echo "== $1 (clicks with $2 carry)" >&2
  "$bin" bench-propagation --model "$1" --device cpu --threads "$threads" --volume "$data/example_ct_dicom" \
    --labels "$data/example_seg_dicom.nii.gz" --objects "$organs" --click-carry "$2" --timing none \
    --out "$out/radsam_validation_$1.json" > /dev/null
}
run lite_medsam box
run radsam mask
python bench/radsam_table.py "$out/radsam_validation_lite_medsam.json" "$out/radsam_validation_radsam.json" "$out/radsam_validation.md"
cat "$out/radsam_validation.md"
