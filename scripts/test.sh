#!/usr/bin/env bash
# Run every test: unit tests, end-to-end tests, and the interop tests against real BitTorrent
# clients (marked #[ignore] so that plain `cargo test` passes without them).
# Installs the Debian packages those tests need when they are missing (needs root or sudo).
#   scripts/test.sh            (from anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."

# Real clients and tools the interop tests drive, all pinned to loopback by the tests (iproute2:
# tests/lan.rs and tests/discovery.rs, whose traffic, multicast and DHT included, stays inside the
# network namespaces they create).
PACKAGES=(mktorrent transmission-cli transmission-daemon python3-libtorrent aria2 opentracker
          chromium wrk iproute2 procps)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The end-to-end and interop tests run the release binary (they move real data).
cargo build --release --quiet
cargo test --release -- --include-ignored
