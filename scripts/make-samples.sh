#!/usr/bin/env bash
# Regenerate the sample content in data/ and copy it into peer1/ and peer2/ (the two peers
# that "have the files"); client/ is emptied. The bytes are deterministic (seeded), so the
# info-hashes stay the same from one run to the next.
#   scripts/make-samples.sh          (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
BT=${BT:-target/debug/bt}
cargo build --quiet
rm -rf data peer1 peer2 client
mkdir -p data/album/disc1 data/album/disc2 client
touch client/.gitkeep
python3 - <<'PY'
import random
rng = random.Random(20261122)
words = ("peer piece tracker seed leech swarm block hash choke unchoke bitfield "
         "announce interested request have cancel torrent info name length").split()
def text(n):
    out, line = [], []
    while sum(map(len, out)) < n:
        line.append(rng.choice(words))
        if len(line) == 12:
            out.append(" ".join(line).capitalize() + ".\n"); line = []
    return "".join(out)[:n]
open("data/book.txt", "w").write(text(123_457))
def blob(path, n):
    open(path, "wb").write(bytes(rng.getrandbits(8) for _ in range(n)))
blob("data/album/cover.bin", 50_000)
blob("data/album/disc1/track01.bin", 70_001)
blob("data/album/disc1/track02.bin", 33_333)
blob("data/album/disc2/track01.bin", 45_678)
open("data/album/notes.txt", "w").write(text(2_345))
open("data/album/empty.txt", "w").close()
PY
"$BT" create data/book.txt -o data/book.txt.torrent --tracker http://127.0.0.1:6969/announce \
  --comment "bt sample: a single text file" --force
"$BT" create data/album -o data/album.torrent --tracker http://127.0.0.1:6969/announce \
  --comment "bt sample: a folder with nested files and an empty one" --force
for p in peer1 peer2; do cp -a data "$p"; done
