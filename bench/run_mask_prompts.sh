#!/usr/bin/env bash
# Mask prompts from files (issue #21; `make bench-mask-prompts`): the spleen of the validation scan
# (the DICOM series, never trained on), RadSAM, mask carry, in one run: from a box on slice 12 (the
# baseline: the prompt `make run` uses), from TotalSegmentator's spleen mask on slice 12 alone
# (propagated), and from the whole mask refined slice by slice (`--mode refine`). Dice against the
# same label map, so the refined row says how faithfully the model reads a mask it is given, not
# that it finds a better spleen. Writes bench/results/mask_prompts.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release/radsam
work=runs/mask_prompts
rm -rf "$work" && mkdir -p "$work"
common=(--volume "$data/example_ct_dicom" --target-name spleen --boundaries 19,0 --reference "$data/example_seg_dicom.nii.gz" --reference-label 1)
"$bin" segment "${common[@]}" --slice 12 --box 291,245,392,377 --out "$work/box" 2> "$work/box.log"
# A mask prompt is never resampled: the label map (stored flipped) is put on the series' own grid
# first, voxel for voxel (the two grids differ by axis flips only), with the box run's mask as the
# template of that grid.
"${PYTHON:-python3}" - "$data/example_seg_dicom.nii.gz" "$work/box/spleen.nii.gz" "$work/labels_on_grid.nii.gz" <<'PY'
import sys
import nibabel as nib, numpy as np
labels, template = nib.load(sys.argv[1]), nib.load(sys.argv[2])
m = np.linalg.inv(template.affine) @ labels.affine  # label voxel -> grid voxel
perm = np.abs(np.round(m[:3, :3]))
if not (np.allclose(np.abs(m[:3, :3]), perm, atol=1e-3) and labels.shape == template.shape):
    sys.exit("the label map is not the series' grid up to axis flips")
data = np.asarray(labels.dataobj)
for axis in range(3):
    if m[axis, axis] < 0:
        data = np.flip(data, axis)
nib.save(nib.Nifti1Image(data.astype(np.uint8), template.affine, template.header), sys.argv[3])
PY
"$bin" segment "${common[@]}" --slice 12 --mask "$work/labels_on_grid.nii.gz:1" --out "$work/propagated" 2> "$work/propagated.log"
"$bin" segment "${common[@]}" --mode refine --mask "$work/labels_on_grid.nii.gz:1" --out "$work/refined" 2> "$work/refined.log"
"${PYTHON:-python3}" - "$work" "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores" <<'PY'
import json, sys, datetime
work, machine = sys.argv[1], sys.argv[2]
rows = [("box on slice 12 (baseline)", "box"), ("TotalSegmentator's mask on slice 12, propagated", "propagated"),
        ("TotalSegmentator's whole mask, refined slice by slice", "refined")]
md = [f"# Mask prompts from files: the validation spleen", "",
      f"Command: `make bench-mask-prompts` (bench/run_mask_prompts.sh). Machine: {machine}; CPU. Written {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC.",
      "", "RadSAM (models/radsam.safetensors), mask carry, boundaries 19..0, Dice against TotalSegmentator's label map (the mask given).", "",
      "| prompt | Dice | mL | slices encoded |", "|---|---|---|---|"]
for name, d in rows:
    r = json.load(open(f"{work}/{d}/result.json"))
    t = r["targets"][0]
    md.append(f"| {name} | {t['dice']:.3f} | {t['volume_ml']:.1f} | {r['encoded_slices'] + r['cached_slices']} |")
open("bench/results/mask_prompts.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
