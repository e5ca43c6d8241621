#!/usr/bin/env bash
# The PACS path against the S3 path (issue #21; `make bench-dicomweb`, also run by `make
# bench-service`): the same series (the validation DICOM scan, 20 slices) fetched by a worker from
# the S3 store and from the PACS (Orthanc + DICOMweb, WADO-RS), and its SEG uploaded to S3 alone or
# also stored back with STOW-RS; N jobs of each kind, alternating, through one worker, in one run.
# Seconds are the worker's own stage times in PostgreSQL: fetch_s, and upload_s (masks and SEG to
# S3, plus the STOW-RS request on the PACS path). The embedding cache is on (its own folder) so the
# jobs after the first cost little besides their transfers.
# Writes bench/results/dicomweb_bench.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release
N=${N:-5}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-radsam} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-radsam-secret}
export RADSAM_QUEUE_PREFIX=radsam-bench-dicomweb DATABASE_URL=postgres://postgres@127.0.0.1:5432/radsam_bench_dicomweb
export RADSAM_DICOMWEB_USER=${RADSAM_DICOMWEB_USER:-radsam} RADSAM_DICOMWEB_PASSWORD=${RADSAM_DICOMWEB_PASSWORD:-radsam-pacs}
work=runs/dicomweb_bench
rm -rf "$work" && mkdir -p "$work"
trap 'pkill -TERM -P $$ -f radsam-worker 2>/dev/null || true' EXIT

bash scripts/services.sh
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS radsam_bench_dicomweb WITH (FORCE)" -c "CREATE DATABASE radsam_bench_dicomweb"
rabbitmqctl -q delete_queue radsam-bench-dicomweb.jobs >/dev/null 2>&1 || true
"$bin/radsam" migrate
"$bin/radsam" upload "$data/example_ct_dicom" s3://radsam-samples/totalsegmentator/example_ct_dicom/ > /dev/null
# The PACS's copy: the sample lacks the UIDs a PACS needs (scripts/pacs.py fills them in); a study
# of this run's own, deleted at the end.
root=1.2.826.0.1.3680043.10.1234.$(date +%s)
study=$root.1
dicomweb=$("${PYTHON:-python3}" scripts/pacs.py store "$data/example_ct_dicom" "$study" "$root.2" "$work/pacs_series")
trap 'pkill -TERM -P $$ -f radsam-worker 2>/dev/null || true; "${PYTHON:-python3}" scripts/pacs.py delete "$study" || true' EXIT

job() { # ID VOLUME_URI [SEG_STORE_URI]
  local store=""
  [ -n "${3:-}" ] && store="\"seg_store_uri\": \"$3\","
  echo "{\"schema_version\": 1, \"job_id\": \"$1\", \"volume_uri\": \"$2\", $store \"targets\": [{\"label\": \"spleen\", \"initial_prompt\": {\"slice\": 12, \"box\": [291, 245, 392, 377]}, \"boundaries\": {\"top\": 19, \"bottom\": 0}}]}"
}
RADSAM_VOLUME_MEMO_MB=0 RADSAM_CACHE_EMBEDDINGS=$work/embeddings RADSAM_HTTP_ADDR=127.0.0.1:9311 RADSAM_DEVICE=cpu "$bin/radsam-worker" > "$work/worker.log" 2>&1 &
pid=$!
source scripts/worker_health.sh
wait_for_worker 9311 $pid "$work/worker.log"
# A warm-up job fills the embedding cache; then the two paths alternate.
job warmup s3://radsam-samples/totalsegmentator/example_ct_dicom/ | "$bin/radsam" submit - > /dev/null
"$bin/radsam" results --wait 600 warmup > /dev/null
for i in $(seq 1 "$N"); do
  job "s3-$i" s3://radsam-samples/totalsegmentator/example_ct_dicom/ | "$bin/radsam" submit - > /dev/null
  "$bin/radsam" results --wait 600 "s3-$i" > /dev/null
  job "pacs-$i" "$dicomweb" "dicomweb+http://127.0.0.1:8042/dicom-web" | "$bin/radsam" submit - > /dev/null
  "$bin/radsam" results --wait 600 "pacs-$i" > /dev/null
done
kill -TERM "$pid"; wait "$pid" || true
psql -h 127.0.0.1 -U postgres -d radsam_bench_dicomweb -A -F, -c "SELECT job_id, status, fetch_s, decode_s, upload_s, total_s FROM jobs WHERE job_id <> 'warmup' ORDER BY job_id" > "$work/jobs.csv"
du -sb "$data/example_ct_dicom" | cut -f1 > "$work/series_bytes.txt"
"${PYTHON:-python3}" - "$work" "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores" <<'PY'
import csv, json, statistics, sys, datetime
work, machine = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(f"{work}/jobs.csv")))
rows = [r for r in rows if r.get("job_id") and not r["job_id"].startswith("(")]
bad = [r["job_id"] for r in rows if r["status"] != "succeeded"]
if bad:
    sys.exit(f"jobs that did not succeed: {bad}")
size = int(open(f"{work}/series_bytes.txt").read()) / 1e6
def stats(prefix, key):
    v = [float(r[key]) for r in rows if r["job_id"].startswith(prefix)]
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}
out = {k: {"fetch_s": stats(k, "fetch_s"), "upload_s": stats(k, "upload_s"), "decode_s": stats(k, "decode_s")} for k in ("s3-", "pacs-")}
out["series_mb"] = size
out["machine"] = machine
json.dump(out, open("bench/results/dicomweb_bench.json", "w"), indent=1)
f = lambda s: f"{s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})"
s3, pacs = out["s3-"], out["pacs-"]
md = f"""# DICOMweb against S3: the same series, the same worker

Command: `make bench-dicomweb` (bench/run_dicomweb_bench.sh). Machine: {machine}; CPU only. Written {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC.

The validation DICOM series (20 slices, {size:.1f} MB as stored, JPEG 2000 lossless) fetched by one worker from the S3 store
(seaweedfs, 20 objects) and from the test PACS (Orthanc 1.10.1 + DICOMweb 1.7, one WADO-RS request; it cannot
transcode JPEG 2000, so the worker's request for explicit little endian is answered 500 and it asks again for the
files as stored), {s3['fetch_s']['n']} jobs of each, alternating. Upload: the masks, labels, SEG and result.json to S3;
on the PACS path also the SEG stored into its study with STOW-RS. Seconds: median (min-max) of the worker's stage times.

| path | fetch s | decode s | upload (+ STOW-RS) s |
|---|---|---|---|
| S3 (`s3://`) | {f(s3['fetch_s'])} | {f(s3['decode_s'])} | {f(s3['upload_s'])} |
| PACS (`dicomweb+http://`, SEG stored back) | {f(pacs['fetch_s'])} | {f(pacs['decode_s'])} | {f(pacs['upload_s'])} |
| PACS / S3 | {pacs['fetch_s']['median'] / s3['fetch_s']['median']:.2f}x | | {pacs['upload_s']['median'] / s3['upload_s']['median']:.2f}x |
"""
open("bench/results/dicomweb_bench.md", "w").write(md)
print(md)
PY
