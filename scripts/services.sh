#!/usr/bin/env bash
# Starts what the queue service needs and finds missing: PostgreSQL and RabbitMQ (installed on the
# development machines), the local S3 store (`weed` from the venv, data in $RADSAM_CACHE/s3), the
# `radsam` database, and a test PACS (Orthanc with its DICOMweb plugin, data in
# $RADSAM_CACHE/orthanc). Safe to run again: running services are left alone.
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

# The test PACS: Debian's Orthanc 1.10.1 with its DICOMweb plugin 1.7 (STOW-RS, WADO-RS, QIDO-RS under
# http://127.0.0.1:8042/dicom-web/, basic auth radsam / radsam-pacs so tests can also see a 401).
# It cannot decode JPEG 2000 (the sample CT series): a WADO-RS retrieve of such a series answers
# 500 unless the Accept asks for transfer-syntax=* (files as stored). Debian's GDCM plugin
# (orthanc-gdcm 1.5) would transcode, but it overflows the HTTP threads' 100 KB stacks
# (gdcm::ImageWriter::Write; Orthanc segfaults after a few retrieves): left out on purpose.
# Installed on first use; the package's postinst cannot start its own service here (no systemd,
# policy-rc.d), and we never read /etc/orthanc: Orthanc gets our one config file, so the package's
# defaults (its storage in /var/lib/orthanc, no auth) cannot leak in.
if ! dpkg -s orthanc orthanc-dicomweb > /dev/null 2>&1; then
  echo "services: installing Orthanc and its DICOMweb plugin (apt)" >&2
  # Refresh the package lists only when they do not know the packages yet (a fresh image).
  apt-cache show orthanc orthanc-dicomweb > /dev/null 2>&1 || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends orthanc orthanc-dicomweb > /dev/null
fi
orthanc=$(command -v Orthanc || echo /usr/sbin/Orthanc)
# A plugin's path as its package installed it (grep reads all of dpkg's list: no SIGPIPE under pipefail).
orthanc_plugin() { dpkg -L "$1" 2>/dev/null | grep "/plugins/$2\$" || echo "/usr/share/orthanc/plugins/$2"; }
mkdir -p "$cache/orthanc/db"
# Written every time (cheap) so an edit here reaches the next start; a running Orthanc keeps the
# config it started with (stop it to apply: kill the pid in $cache/orthanc/orthanc.pid).
# Orthanc 1.10 has no HTTP bind-address option: it listens on all interfaces, and
# RemoteAccessAllowed=false makes it refuse every client but 127.0.0.1 (401, even with the right
# password). The DICOM (DIMSE) server is off: the tests speak DICOMweb only, so nothing listens on
# 4242. DicomWeb.Host is left unset so RetrieveURL follows the request's Host header.
cat > "$cache/orthanc/orthanc.json" <<JSON
{
  "Name": "RadSAM test PACS",
  "StorageDirectory": "$cache/orthanc/db",
  "IndexDirectory": "$cache/orthanc/db",
  "HttpPort": 8042,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": {"radsam": "radsam-pacs"},
  "DicomServerEnabled": false,
  "DicomPort": 4242,
  "WebDavEnabled": false,
  "SaveJobs": false,
  "Plugins": ["$(orthanc_plugin orthanc-dicomweb libOrthancDicomWeb.so)"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado", "Ssl": false}
}
JSON
if ! port_open 8042; then
  echo "services: starting Orthanc (data in $cache/orthanc/db)" >&2
  setsid nohup "$orthanc" "$cache/orthanc/orthanc.json" > "$cache/orthanc/orthanc.log" 2>&1 < /dev/null &
  echo $! > "$cache/orthanc/orthanc.pid"
  wait_port 8042 Orthanc 60
fi
# Something else on 8042 (the package's own service started elsewhere: no auth) would answer 200
# here; ours answers 401 without credentials.
if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8042/system)" != 401 ]; then
  echo "services: port 8042 is not our Orthanc (no 401 without credentials); see $cache/orthanc/orthanc.log" >&2
  exit 1
fi
