#!/bin/bash
# aria2c seeder / downloader, pinned to loopback; used by tests/engine_interop.rs and tests/tracker_interop.rs.
# The settings are those of ../shared/interop/clients/aria2.sh (tested there).
#
#   aria2.sh seed TORRENT DATA_DIR PORT [aria2c args...]  # seeds (no re-hash) until killed or 10 min
#   aria2.sh get  TORRENT OUT_DIR  PORT [aria2c args...]  # downloads, exits 0 when complete
#
# aria2c cannot be handed a peer address directly: it finds the seeder through
# the torrent's (loopback) tracker. aria2 has no uTP and no UPnP/NAT-PMP.
set -euo pipefail
mode=$1 torrent=$2 dir=$3 port=$4
shift 4  # the rest goes to aria2c as is

loopback=(
  --no-conf=true                       # ignore ~/.aria2/aria2.conf
  --enable-dht=false --enable-dht6=false
  --enable-peer-exchange=false
  --bt-enable-lpd=false                # local peer discovery (multicast) off
  --interface=127.0.0.1                # bind every socket to loopback
  --disable-ipv6=true
  --bt-external-ip=127.0.0.1           # address reported to the tracker
  --listen-port="$port"
  --dht-listen-port=$((port + 1000))   # unused (DHT off) but keep off 6881
  --async-dns=false
  --bt-tracker-connect-timeout=5 --bt-tracker-timeout=5
)
quiet=(--console-log-level=warn --summary-interval=0 --download-result=hide
       --auto-save-interval=0 --allow-overwrite=true)

case $mode in
  seed)
    exec aria2c "${loopback[@]}" "${quiet[@]}" -d "$dir" \
      --check-integrity=false --bt-seed-unverified=true \
      --seed-ratio=0.0 --seed-time=30 \
      "$@" "$torrent" ;;
  get)
    # file-allocation=none: sparse writes like the other clients
    exec aria2c "${loopback[@]}" "${quiet[@]}" -d "$dir" \
      --file-allocation=none --seed-time=0 --bt-hash-check-seed=false \
      --bt-stop-timeout=120 \
      "$@" "$torrent" ;;
  *) echo "usage: $0 seed|get TORRENT DIR PORT" >&2; exit 64 ;;
esac
