# Sourced by the scripts that start a radsam-worker (scripts/run_sample.sh, scripts/run_pacs.sh,
# bench/run_service_bench.sh, bench/run_dicomweb_bench.sh).
#
# wait_for_worker PORT PID LOG: returns once the worker answers /healthz on 127.0.0.1:PORT with 200
# (model loaded, database migrated, broker connected); if the worker exits first, prints the tail
# of its LOG and exits 1, so that a worker that cannot start never leaves a script waiting.
wait_for_worker() {
  local port=$1 pid=$2 log=$3
  until (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf 'GET /healthz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3 | grep -q ' 200 ') 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { echo "the worker on port $port stopped; its log ($log):" >&2; tail -20 "$log" >&2; exit 1; }
    sleep 0.5
  done
}
