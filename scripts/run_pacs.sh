#!/usr/bin/env bash
# The PACS round trip (`make run-pacs`, issue #21), as a PACS router would use the service: the
# validation scan is stored into the test PACS (Orthanc + DICOMweb, scripts/services.sh), a job
# names the series by its DICOMweb URI, a worker fetches it with WADO-RS, segments liver and spleen,
# stores the DICOM SEG back into the same study with STOW-RS (RADSAM_SEG_STORE_URI=source) and
# records where it went; the SEG is then found in the study with QIDO-RS. The study stays in the
# PACS: look at it in Orthanc Explorer, http://127.0.0.1:8042/app/explorer.html (radsam / radsam-pacs).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-radsam} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-radsam-secret}
export RADSAM_DICOMWEB_USER=${RADSAM_DICOMWEB_USER:-radsam} RADSAM_DICOMWEB_PASSWORD=${RADSAM_DICOMWEB_PASSWORD:-radsam-pacs}
mkdir -p runs/pacs

bash scripts/services.sh
"$bin/radsam" migrate
"$bin/radsam" upload "$data/example_seg_dicom.nii.gz" s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz > /dev/null
run=$(date +%Y%m%d-%H%M%S)
study=1.2.826.0.1.3680043.10.1234.$(date +%s)
# The sample series lacks the UIDs a PACS needs: scripts/pacs.py fills them in as it stores it.
series_uri=$("${PYTHON:-python3}" scripts/pacs.py store "$data/example_ct_dicom" "$study.1" "$study.2" runs/pacs/series)
echo "stored the validation scan in the PACS: $series_uri"

RADSAM_SEG_STORE_URI=source RADSAM_HTTP_ADDR=127.0.0.1:9188 "$bin/radsam-worker" > runs/pacs/worker.log 2>&1 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null || true; wait $worker 2>/dev/null || true' EXIT
source scripts/worker_health.sh
wait_for_worker 9188 $worker runs/pacs/worker.log
cat > runs/pacs/job.json <<JOB
{"schema_version": 1, "job_id": "pacs-$run", "correlation_id": "pacs-round-trip", "volume_uri": "$series_uri",
 "targets": [
  {"label": "liver", "initial_prompt": {"slice": 16, "box": [107, 199, 278, 374]}, "boundaries": {"top": 19, "bottom": 0},
   "reference_mask_uri": "s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz", "reference_label": 5},
  {"label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]}, "boundaries": {"top": 19, "bottom": 0},
   "reference_mask_uri": "s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz", "reference_label": 1}]}
JOB
"$bin/radsam" submit runs/pacs/job.json
"$bin/radsam" results --wait 900 "pacs-$run" | tee runs/pacs/results.txt
psql -h 127.0.0.1 -U postgres -d radsam -tAc "SELECT DISTINCT pacs_seg_uri FROM results WHERE job_id = 'pacs-$run'" | sed 's/^/SEG stored in the PACS: /'
echo "SEG instances in study $study.1 (QIDO-RS): $("${PYTHON:-python3}" scripts/pacs.py count-seg "$study.1")"
