#!/usr/bin/env bash
# The queue service's throughput and where a job's time goes (issue #6), on the sample CT:
#   reference: `radsam segment` on the same job, with no services (local files, one process per job);
#   service:   N jobs through RabbitMQ -> radsam-worker -> S3 -> PostgreSQL, with one worker and with
#              two workers (each with half the cores), all in this one run on this machine;
#   the product path's encoder: seconds per encoded slice of `radsam bench-model` (the encoder
#              alone), the PyTorch reference, `radsam segment` and a worker job, side by side;
#   a long object that stops early (bench/make_long_phantom.py): slices encoded against slices in
#              its boundaries, and the peak memory of the CLI and of a worker;
#   corrections: one worker with an empty embedding cache runs a job, then a revision of it with
#              one more click (resuming the parent's saved session), the same revision again with
#              the parent's session damaged (the reference: the prompt and clicks replayed), then a
#              second worker (empty disk) a further revision from the S3 tier (issue #20): what a
#              correction costs against the cold job.
# The throughput rows run with the embedding cache off (RADSAM_CACHE_EMBEDDINGS=off): N copies of
# one job would otherwise be N-1 cache hits.
# Each job: liver (box + one click) and spleen (box) on the validation DICOM scan, RadSAM, mask carry.
# Writes bench/results/service_bench.{md,json} (stage times read back from PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
data=$cache/data/totalsegmentator
bin=${CARGO_TARGET_DIR:-target}/release
N=${N:-6}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-radsam} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-radsam-secret}
export RADSAM_QUEUE_PREFIX=radsam-bench DATABASE_URL=postgres://postgres@127.0.0.1:5432/radsam_bench
work=runs/service_bench
rm -rf "$work" && mkdir -p "$work"
cores=$(nproc)
export RADSAM_CACHE_EMBEDDINGS=off
# Workers this script started never outlive it (a failed step would leave them holding their ports).
trap 'pkill -TERM -P $$ -f radsam-worker 2>/dev/null || true' EXIT

bash scripts/services.sh
source scripts/worker_health.sh
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS radsam_bench WITH (FORCE)" -c "CREATE DATABASE radsam_bench"
rabbitmqctl -q delete_queue radsam-bench.jobs >/dev/null 2>&1 || true
"$bin/radsam" migrate
"$bin/radsam" upload "$data/example_ct_dicom" s3://radsam-samples/totalsegmentator/example_ct_dicom/
"$bin/radsam" upload "$data/example_seg_dicom.nii.gz" s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz

job() { # job ID VOLUME_URI REFERENCE_URI
  cat <<JOB
{"schema_version": 1, "job_id": "$1", "correlation_id": "bench", "volume_uri": "$2", "model_version": "radsam",
 "targets": [
  {"label": "liver", "initial_prompt": {"slice": 16, "box": [107, 199, 278, 374]}, "boundaries": {"top": 19, "bottom": 0},
   "correction_clicks": [{"slice": 3, "x": 200, "y": 300, "positive": true}], "reference_mask_uri": "$3", "reference_label": 5},
  {"label": "spleen", "initial_prompt": {"slice": 12, "box": [291, 245, 392, 377]}, "boundaries": {"top": 19, "bottom": 0},
   "reference_mask_uri": "$3", "reference_label": 1}]}
JOB
}

now() { date +%s.%N; }
# The encoder alone: Rust (tch) and the PyTorch reference with the Rust binary's malloc settings.
malloc_env=(MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647 MALLOC_TOP_PAD_=536870912 MALLOC_ARENA_MAX=1)
"$bin/radsam" bench-model --model radsam --device cpu --slices 4 --repeats 3 --threads "$cores" --out "$work/model_rust.json" > /dev/null
env "${malloc_env[@]}" "${PYTHON:-python3}" bench/model_bench.py lite_medsam 4 3 "$cores" "$work/model_pytorch.json" "$work/model_ref.safetensors" \
  "pytorch-reference + malloc env" > /dev/null

# Reference: the CLI, same job from local files, one process per job (model load included, as a
# worker's is not: the worker loads once).
job ref "$data/example_ct_dicom" "$data/example_seg_dicom.nii.gz" > "$work/ref_job.json"
: > "$work/reference.csv"
for i in $(seq 1 "$N"); do
  rm -rf "$work/ref_out"
  t0=$(now); "$bin/radsam" segment --device cpu --job "$work/ref_job.json" --out "$work/ref_out" 2>/dev/null; t1=$(now)
  echo "$i,$(awk "BEGIN{print $t1 - $t0}")" >> "$work/reference.csv"
  cp "$work/ref_out/result.json" "$work/ref_result_$i.json"
done

run_workers() { # NAME WORKERS THREADS_EACH
  local name=$1 count=$2 threads=$3 pids=()
  for w in $(seq 1 "$count"); do
    RADSAM_HTTP_ADDR=127.0.0.1:$((9300 + w)) RADSAM_THREADS=$threads RADSAM_DEVICE=cpu "$bin/radsam-worker" > "$work/worker_${name}_$w.log" 2>&1 &
    pids+=($!)
  done
  for w in $(seq 1 "$count"); do
    wait_for_worker $((9300 + w)) "${pids[$((w - 1))]}" "$work/worker_${name}_$w.log"
  done
  ids=()
  for i in $(seq 1 "$N"); do
    job "$name-$i" s3://radsam-samples/totalsegmentator/example_ct_dicom/ s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz > "$work/job_${name}_$i.json"
    ids+=("$name-$i")
  done
  t0=$(now)
  cat "$work"/job_${name}_*.json | "$bin/radsam" submit - > /dev/null
  "$bin/radsam" results --wait 1800 "${ids[@]}" > "$work/results_$name.txt"
  t1=$(now)
  echo "$name,$count,$threads,$(awk "BEGIN{print $t1 - $t0}")" >> "$work/wall.csv"
  kill -TERM "${pids[@]}"; wait "${pids[@]}" || true
}
: > "$work/wall.csv"
run_workers one 1 "$cores"
run_workers two 2 $((cores / 2 > 0 ? cores / 2 : 1))

# Corrections: one worker with its own empty embedding cache (local disk, and a fresh prefix of the
# S3 tier): the job, then a revision of it with one more click; then a second worker, its own empty
# disk, takes a further revision: its slices come from the S3 tier.
tier=s3://radsam-embeddings/bench-$(date +%s)/
start_fix_worker() { # PORT LOCAL_DIR LOG
  RADSAM_CACHE_EMBEDDINGS=$2 RADSAM_CACHE_EMBEDDINGS_S3=$tier RADSAM_HTTP_ADDR=127.0.0.1:$1 RADSAM_THREADS=$cores RADSAM_DEVICE=cpu \
    "$bin/radsam-worker" > "$3" 2>&1 &
  fix_pid=$!
  wait_for_worker "$1" $fix_pid "$3"
}
cache_metrics() { # PORT OUT
  (exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3) | grep '^radsam_embedding_cache' > "$2" || true
}
revision() { # JOB_ID PARENT SLICE X Y
  echo "{\"schema_version\": 1, \"job_id\": \"$1\", \"parent_job_id\": \"$2\", \"targets\": [{\"label\": \"liver\", \"correction_clicks\": [{\"slice\": $3, \"x\": $4, \"y\": $5, \"positive\": true}]}]}"
}
run_one() { # FILE JOB_ID
  "$bin/radsam" submit - < "$1" > /dev/null
  "$bin/radsam" results --wait 600 "$2" > "$work/results_$2.txt"
}
start_fix_worker 9301 "$work/embeddings-a" "$work/worker_fix_a.log"
job fix-cold s3://radsam-samples/totalsegmentator/example_ct_dicom/ s3://radsam-samples/totalsegmentator/example_seg_dicom.nii.gz > "$work/job_fix_cold.json"
revision fix-warm fix-cold 12 160 260 > "$work/job_fix_warm.json"
run_one "$work/job_fix_cold.json" fix-cold
run_one "$work/job_fix_warm.json" fix-warm
# The reference: the same revision once the parent's saved session is unreadable, so the worker
# replays the prompt and the clicks (what every correction did before sessions were saved).
printf 'damaged' > "$work/damaged.session.gz"
"$bin/radsam" upload "$work/damaged.session.gz" s3://radsam-results/fix-cold/sessions/liver.session.gz > /dev/null
revision fix-replay fix-cold 12 160 260 > "$work/job_fix_replay.json"
run_one "$work/job_fix_replay.json" fix-replay
cache_metrics 9301 "$work/fix_cache_metrics.txt"
sleep 2 # the last uploads to the S3 tier run behind the job
kill -TERM "$fix_pid"; wait "$fix_pid" || true
start_fix_worker 9302 "$work/embeddings-b" "$work/worker_fix_b.log"
revision fix-remote fix-warm 14 170 270 > "$work/job_fix_remote.json"
run_one "$work/job_fix_remote.json" fix-remote
cache_metrics 9302 "$work/fix_remote_cache_metrics.txt"
kill -TERM "$fix_pid"; wait "$fix_pid" || true

# A long object that stops early: the tube of bench/make_long_phantom.py (100 slices) prompted on
# its middle slice with boundaries over the whole 160-slice volume. The CLI (its result.json says
# what was encoded; /usr/bin/time its peak memory) and a worker (peak memory from /proc: VmHWM).
"${PYTHON:-python3}" bench/make_long_phantom.py "$work/long_tube.nii.gz"
"$bin/radsam" upload "$work/long_tube.nii.gz" s3://radsam-samples/long_tube.nii.gz
long_job() { # ID VOLUME_URI
  echo "{\"schema_version\": 1, \"job_id\": \"$1\", \"volume_uri\": \"$2\", \"targets\": [{\"label\": \"tube\", \"initial_prompt\": {\"slice\": 80, \"box\": [238, 238, 274, 274]}, \"boundaries\": {\"top\": 159, \"bottom\": 0}}]}"
}
long_job long-cli "$work/long_tube.nii.gz" > "$work/job_long_cli.json"
/usr/bin/time -f "%M" -o "$work/long_cli_rss_kb.txt" "$bin/radsam" segment --device cpu --job "$work/job_long_cli.json" --out "$work/long_out" 2>/dev/null
RADSAM_HTTP_ADDR=127.0.0.1:9303 RADSAM_THREADS=$cores RADSAM_DEVICE=cpu "$bin/radsam-worker" > "$work/worker_long.log" 2>&1 &
long_pid=$!
wait_for_worker 9303 $long_pid "$work/worker_long.log"
long_job long-worker s3://radsam-samples/long_tube.nii.gz > "$work/job_long_worker.json"
run_one "$work/job_long_worker.json" long-worker
grep VmHWM "/proc/$long_pid/status" | awk '{print $2}' > "$work/long_worker_rss_kb.txt"
kill -TERM "$long_pid"; wait "$long_pid" || true

psql -h 127.0.0.1 -U postgres -d radsam_bench -A -F, -P footer=off -c "SELECT job_id, label, volume_ml FROM results WHERE job_id LIKE 'fix-%' ORDER BY job_id, label" > "$work/fix_results.csv"
psql -h 127.0.0.1 -U postgres -d radsam_bench -A -F, -c "SELECT job_id, worker, fetch_s, decode_s, encode_s, propagate_s, upload_s, commit_s, total_s, queue_lag_s FROM jobs WHERE status = 'succeeded' ORDER BY job_id" > "$work/jobs.csv"
"${PYTHON:-python3}" bench/service_table.py "$work" "$N" "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $cores cores" > bench/results/service_bench.md
cp "$work/service_bench.json" bench/results/service_bench.json
cat bench/results/service_bench.md
# The PACS path's row (issue #21): its own table, bench/results/dicomweb_bench.md.
bash bench/run_dicomweb_bench.sh
