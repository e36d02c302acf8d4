#!/bin/bash
# aria2c peer for the tracker interop tests, kept on loopback.
#   aria2.sh seed TORRENT DATA_DIR PORT   seed (no re-hash) until killed
#   aria2.sh get  TORRENT OUT_DIR  PORT   download, exit 0 when complete
# aria2 finds peers only through the torrent's tracker. DHT, PEX and local peer discovery are
# off; every socket binds to 127.0.0.1 (aria2 has no uTP, UPnP or NAT-PMP).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 seed|get TORRENT DIR PORT" >&2; exit 64; }
mode=$1 torrent=$2 dir=$3 port=$4
common=(
  --no-conf=true
  --enable-dht=false --enable-dht6=false --enable-peer-exchange=false --bt-enable-lpd=false
  --interface=127.0.0.1 --disable-ipv6=true --bt-external-ip=127.0.0.1 --async-dns=false
  --listen-port="$port" --dht-listen-port=$((port + 1))
  --bt-tracker-connect-timeout=5 --bt-tracker-timeout=5
  --console-log-level=warn --summary-interval=0 --download-result=hide
  --auto-save-interval=0 --allow-overwrite=true -d "$dir"
)
case $mode in
  seed) exec aria2c "${common[@]}" --check-integrity=false --bt-seed-unverified=true \
          --seed-ratio=0.0 --seed-time=30 "$torrent" ;;
  get)  exec aria2c "${common[@]}" --file-allocation=none --seed-time=0 \
          --bt-hash-check-seed=false --bt-stop-timeout=120 "$torrent" ;;
  *)    echo "usage: $0 seed|get TORRENT DIR PORT" >&2; exit 64 ;;
esac
