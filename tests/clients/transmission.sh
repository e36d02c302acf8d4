#!/bin/bash
# transmission-daemon (3.00) seeder / downloader, pinned to loopback; used by
# tests/engine_interop.rs. The settings are those of ../shared/interop/clients/transmission.sh
# (tested there); here the RPC port is given, not derived from the peer port.
#
#   transmission.sh seed TORRENT DATA_DIR PORT RPC_PORT STATE_DIR  # verify, then seed until killed (<= 10 min)
#   transmission.sh get  TORRENT OUT_DIR  PORT RPC_PORT STATE_DIR  # exits 0 once 100% done
#
# Caveat: Transmission 3.00 treats 127.0.0.0/8 as a "martian" address and never
# dials a 127.x peer it learns from a tracker, so in `get` mode it only receives
# data from seeders that connect to it. Incoming 127.x connections are accepted,
# so `seed` mode works. As a seeder it unchokes a new peer only at its 10 s
# rechoke tick and uploads to one peer at only a few MB/s (cf. transmission #1439).
#
# RPC listens on 127.0.0.1:RPC_PORT. Everything that could leave the machine
# is off in settings.json: DHT, PEX, LPD, uTP, UPnP/NAT-PMP, blocklist updates.
set -euo pipefail
mode=$1 torrent=$(realpath "$2") dir=$(realpath "$3") port=$4 rpc=$5 state=$6
mkdir -p "$state"
cat >"$state/settings.json" <<EOF
{
  "bind-address-ipv4": "127.0.0.1",
  "bind-address-ipv6": "::1",
  "peer-port": $port,
  "peer-port-random-on-start": false,
  "dht-enabled": false,
  "pex-enabled": false,
  "lpd-enabled": false,
  "utp-enabled": false,
  "port-forwarding-enabled": false,
  "blocklist-enabled": false,
  "encryption": 0,
  "rpc-enabled": true,
  "rpc-bind-address": "127.0.0.1",
  "rpc-port": $rpc,
  "rpc-authentication-required": false,
  "rpc-whitelist-enabled": true,
  "rpc-whitelist": "127.0.0.1",
  "rpc-host-whitelist-enabled": false,
  "download-dir": "$dir",
  "incomplete-dir-enabled": false,
  "rename-partial-files": false,
  "preallocation": 0,
  "watch-dir-enabled": false,
  "start-added-torrents": true,
  "ratio-limit-enabled": false,
  "idle-seeding-limit-enabled": false,
  "speed-limit-up-enabled": false,
  "speed-limit-down-enabled": false,
  "alt-speed-enabled": false,
  "peer-limit-global": 200,
  "peer-limit-per-torrent": 60,
  "script-torrent-done-enabled": true,
  "script-torrent-done-filename": "$state/done.sh",
  "message-level": ${TR_MSGLEVEL:-1}
}
EOF
printf '#!/bin/sh\ntouch "%s/done"\n' "$state" >"$state/done.sh"
chmod +x "$state/done.sh"

timeout --foreground 600 transmission-daemon -f -g "$state" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null' EXIT
trap 'exit 0' TERM INT

remote() { transmission-remote "127.0.0.1:$rpc" "$@"; }
for _ in $(seq 100); do remote -l >/dev/null 2>&1 && break; sleep 0.1; done
remote -a "$torrent" -w "$dir" >/dev/null

case $mode in
  seed) wait $daemon ;;
  get)
    # the done-script (set in settings.json) creates $state/done; poll for it
    # with bash builtins only (read -t on a fifo), so waiting costs no CPU
    mkfifo "$state/tick"; exec 3<>"$state/tick"
    until [ -e "$state/done" ]; do
      read -r -t 0.05 -u 3 _ || true
      kill -0 $daemon 2>/dev/null || exit 3
    done ;;
  *) echo "usage: $0 seed|get TORRENT DIR PORT RPC_PORT STATE_DIR" >&2; exit 64 ;;
esac
