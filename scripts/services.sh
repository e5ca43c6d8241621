#!/usr/bin/env bash
# Starts what the queue service needs and finds missing: PostgreSQL and RabbitMQ (installed on the
# development machines), the local S3 store (`weed` from the venv, data in $RADSAM_CACHE/s3), and
# the `radsam` database. Safe to run again: running services are left alone.
set -euo pipefail
cache=${RADSAM_CACHE:-$HOME/.cache/radsam}
weed=$cache/venv/bin/weed
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { for _ in $(seq 1 "${3:-60}"); do port_open "$1" && return 0; sleep 1; done; echo "services: $2 did not start (port $1)" >&2; return 1; }

if ! port_open 5432; then
  echo "services: starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_port 5432 PostgreSQL
fi
if ! port_open 5672; then
  echo "services: starting RabbitMQ" >&2
  rabbitmq-server -detached
  wait_port 5672 RabbitMQ 90
fi
if ! port_open 8333; then
  echo "services: starting the local S3 store (weed mini, data in $cache/s3)" >&2
  mkdir -p "$cache/s3"
  AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-radsam} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-radsam-secret} \
    setsid nohup "$weed" mini -dir="$cache/s3" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -admin.ui=false -s3.port.iceberg=0 -s3.port.lance=0 > "$cache/s3/weed.log" 2>&1 < /dev/null &
  wait_port 8333 "the S3 store" 60
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'radsam'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE radsam"
fi
