#!/usr/bin/env bash
# The main job (`make run`), end to end through the queue service on the sample CT: starts what is
# missing (PostgreSQL, RabbitMQ, the local S3 store), migrates, uploads the validation scan (a DICOM
# series) and its reference labels to S3, starts a worker, submits the sample jobs, waits, prints
# the per-organ results read back from PostgreSQL, and stops the worker with SIGTERM.
#   job 1: liver and spleen, each from ONE box on one slice plus the organ's first and last slice,
#          the project's RadSAM with the mask carried slice to slice, one correction click on the liver;
#   job 2: the same prompts with LiteMedSAM as shipped and the box carried (the baseline).
# Masks (NIfTI, DICOM SEG, overlays) land in s3://radsam-results/<job id>/.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-radsam} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-radsam-secret}
mkdir -p runs/sample

bash scripts/services.sh
"$bin/radsam" migrate
"$bin/radsam" upload "$data/example_ct_dicom" s3://radsam-samples/totalsegmentator/example_ct_dicom/
"$bin/radsam" upload "$data/example_seg_dicom.nii.gz" s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz

RADSAM_OVERLAYS=true "$bin/radsam-worker" > runs/sample/worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT
# Healthy = model loaded, database migrated, broker connected (/healthz on RADSAM_HTTP_ADDR).
source scripts/worker_health.sh
wait_for_worker 9187 $worker runs/sample/worker.log

run=$(date +%Y%m%d-%H%M%S)
job() { # job ID MODEL CARRY CLICKS
  cat <<JOB
{"schema_version": 1, "job_id": "$1", "correlation_id": "totalsegmentator-example-ct-dicom",
 "volume_uri": "s3://radsam-samples/totalsegmentator/example_ct_dicom/", "model_version": "$2",
 "targets": [
  {"label": "liver", "initial_prompt": {"slice": 16, "box": [107, 199, 278, 374]}, "boundaries": {"top": 19, "bottom": 0},
   "correction_clicks": $4, "carry": "$3",
   "reference_mask_uri": "s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz", "reference_label": 5},
  {"label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]}, "boundaries": {"top": 19, "bottom": 0},
   "carry": "$3", "reference_mask_uri": "s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz", "reference_label": 1}
 ]}
JOB
}
job "sample-$run-radsam" radsam mask '[{"slice": 3, "x": 200, "y": 300, "positive": true}]' > runs/sample/job_radsam.json
job "sample-$run-litemedsam" lite_medsam box '[]' > runs/sample/job_litemedsam.json
"$bin/radsam" submit runs/sample/job_radsam.json runs/sample/job_litemedsam.json
"$bin/radsam" results --wait 900 "sample-$run-radsam" "sample-$run-litemedsam" | tee runs/sample/results.txt
echo "main job done: per-organ rows above (PostgreSQL view organ_volumes); worker log runs/sample/worker.log"
