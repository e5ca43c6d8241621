#!/usr/bin/env bash
# The main job on the sample CT (`make run`): the validation scan (a DICOM series), liver and
# spleen each from ONE box on one slice plus the organ's first and last slice, the mask carried slice to
# slice, one correction click on the liver; Dice against TotalSegmentator's labels. Outputs: a
# mask NIfTI per organ, labels.nii.gz, a DICOM SEG, result.json, and QA overlays in runs/sample/.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${RADSAM_CACHE:-$HOME/.cache/radsam}/data/totalsegmentator
out=${OUT:-runs/sample}
bin=${CARGO_TARGET_DIR:-target}/release/radsam
mkdir -p runs
cat > runs/sample_job.json <<JOB
{
  "schema_version": 1,
  "job_id": "sample-1",
  "correlation_id": "totalsegmentator-example-ct-dicom",
  "volume_uri": "file://$data/example_ct_dicom",
  "model_version": "radsam",
  "targets": [
    {
      "label": "liver",
      "initial_prompt": {"slice": 16, "box": [107, 199, 278, 374]},
      "boundaries": {"top": 19, "bottom": 0},
      "correction_clicks": [{"slice": 3, "x": 200, "y": 300, "positive": true}],
      "reference_mask_uri": "file://$data/example_seg_dicom.nii.gz",
      "reference_label": 5,
      "carry": "mask"
    },
    {
      "label": "spleen",
      "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]},
      "boundaries": {"top": 19, "bottom": 0},
      "reference_mask_uri": "file://$data/example_seg_dicom.nii.gz",
      "reference_label": 1,
      "carry": "mask"
    }
  ]
}
JOB
"$bin" segment --job runs/sample_job.json --overlays --out "$out"
echo "main job done: $out/ (result.json, liver.nii.gz, spleen.nii.gz, labels.nii.gz, seg.dcm, overlays/)"
