#!/usr/bin/python3
"""Scale benchmark (issue 17): many files in one torrent, many torrents in one client.

    bench/scale.py                                   # 10,000 and 100,000 files; 250/1,000/2,000 torrents
    bench/scale.py --files 10000 --torrents 250 --reps 1

Many files: writes N small files (1..2,000 bytes, every 10th empty, 100 per folder), then times
in the same run, each under a soft open-file limit of --nofile (1024, the common default):
`bt create`, `mktorrent`, `transmission-create` and libtorrent's `create_torrent` (v1 only,
Debian's python3-libtorrent) with the same piece length, and whether bt's info-hash equals
mktorrent's; then `bt check` against libtorrent's hash check of the same data (tests/clients/lt.py
check). The data is in the page cache (just written): this measures per-file costs, not the disk.

Many torrents: writes N small single-file torrents (their data absent) and times `bt client`
given all N on its command line, from its start to its "listening on" line (the library import
and the start of every torrent), with its peak RSS (VmHWM) at that moment. The client is
pointed at a loopback port nobody listens on and stopped at once.

Prints Markdown tables. Nothing leaves 127.0.0.1.
"""
import argparse
import hashlib
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BT = os.path.join(ROOT, "target/release/bt")
PY = "/usr/bin/python3"  # Debian's python, where python3-libtorrent lives
LT = [PY, os.path.join(ROOT, "tests/clients/lt.py")]
PIECE = 65536


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def limit(nofile):
    """preexec_fn: lower the soft open-file limit of the child."""
    def apply():
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(nofile, hard), hard))
    return apply


def timed(cmd, nofile, cwd=None):
    """Run cmd under the limit; (seconds, exit code, output tail)."""
    t = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       preexec_fn=limit(nofile), cwd=cwd)
    dt = time.monotonic() - t
    return dt, p.returncode, p.stdout.decode(errors="replace").strip().splitlines()[-1:]


def make_files(root, n):
    total = 0
    for i in range(n):
        d = os.path.join(root, f"d{i // 100:04}")
        if i % 100 == 0:
            os.makedirs(d, exist_ok=True)
        size = 0 if i % 10 == 0 else 1 + (i * 7919) % 2000
        with open(os.path.join(d, f"f{i:06}"), "wb") as f:
            f.write(os.urandom(size))
        total += size
    return total


def bdecode_info_hash(path):
    """SHA-1 of the raw `info` value of a torrent (a tiny bencode walker)."""
    data = open(path, "rb").read()

    def skip(i):
        c = data[i:i + 1]
        if c == b"i":
            return data.index(b"e", i) + 1
        if c in (b"l", b"d"):
            i += 1
            while data[i:i + 1] != b"e":
                i = skip(i)
            return i + 1
        colon = data.index(b":", i)
        return colon + 1 + int(data[i:colon])

    i = 1
    while data[i:i + 1] != b"e":
        key_end = skip(i)
        key = data[data.index(b":", i) + 1:key_end]
        val_end = skip(key_end)
        if key == b"info":
            return hashlib.sha1(data[key_end:val_end]).hexdigest()
        i = val_end
    return None


def have_lt():
    return os.path.exists(PY) and subprocess.run(
        [PY, "-c", "import libtorrent"], capture_output=True).returncode == 0


LT_CREATE = """
import sys, libtorrent as lt
fs = lt.file_storage()
lt.add_files(fs, sys.argv[1])
t = lt.create_torrent(fs, int(sys.argv[2]), flags=lt.create_torrent.v1_only)
t.add_tracker("http://127.0.0.1:9/announce")
lt.set_piece_hashes(t, sys.argv[3])
open(sys.argv[4], "wb").write(lt.bencode(t.generate()))
"""


def many_files(n, reps, nofile, work):
    base = os.path.join(work, f"files{n}")
    src = os.path.join(base, "many")
    os.makedirs(src)
    total = make_files(src, n)
    out = os.path.join(base, "out")
    os.makedirs(out)
    tracker = "http://127.0.0.1:9/announce"
    tools = {
        "bt create": [BT, "create", src, "--piece-length", f"{PIECE // 1024}k", "--tracker", tracker,
                      "-o", f"{out}/bt.torrent", "--force"],
        "mktorrent": ["mktorrent", "-l", str(PIECE.bit_length() - 1), "-a", tracker,
                      "-o", f"{out}/mk.torrent", src],
        "transmission-create": ["transmission-create", "-s", str(PIECE // 1024), "-t", tracker,
                                "-o", f"{out}/tr.torrent", src],
    }
    if have_lt():
        tools["libtorrent create_torrent"] = [PY, "-c", LT_CREATE, src, str(PIECE), base,
                                              f"{out}/lt.torrent"]
    rows = []
    for name, cmd in tools.items():
        if not shutil.which(cmd[0]):
            rows.append((name, None, "not installed"))
            continue
        times = []
        note = ""
        for _ in range(reps):
            # mktorrent refuses to overwrite its output
            for arg in cmd:
                if arg.startswith(out) and os.path.exists(arg):
                    os.remove(arg)
            dt, rc, tail = timed(cmd, nofile)
            if rc != 0:
                note = f"exit {rc}: {' '.join(tail)}"
                break
            times.append(dt)
        rows.append((name, statistics.median(times) if times else None, note))
    same = None
    if os.path.exists(f"{out}/bt.torrent") and os.path.exists(f"{out}/mk.torrent"):
        same = bdecode_info_hash(f"{out}/bt.torrent") == bdecode_info_hash(f"{out}/mk.torrent")
    # Checks: bt check, then libtorrent's hash check of the same data.
    shutil.copy(f"{out}/bt.torrent", f"{base}/many.torrent")
    checks = []
    times, note = [], ""
    for _ in range(reps):
        dt, rc, tail = timed([BT, "check", f"{base}/many.torrent"], nofile)
        if rc != 0:
            note = f"exit {rc}: {' '.join(tail)}"
            break
        times.append(dt)
    checks.append(("bt check", statistics.median(times) if times else None, note))
    if have_lt():
        times, note = [], ""
        for _ in range(reps):
            dt, rc, tail = timed(LT + ["check", "--timeout", "1200", "--job",
                                       f"{base}/many.torrent", base], nofile)
            if rc != 0 or '"is_seeding": true' not in " ".join(tail):
                note = f"exit {rc}: {' '.join(tail)[:120]}"
                break
            times.append(dt)
        checks.append(("libtorrent hash check (lt.py: includes Python and session start)",
                       statistics.median(times) if times else None, note))
    shutil.rmtree(base)
    return total, rows, same, checks


def bencode(v):
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:%s" % (len(v), v)
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    raise TypeError(v)


def vmhwm_kib(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def many_torrents(n, nofile, work):
    base = os.path.join(work, f"torrents{n}")
    tdir = os.path.join(base, "t")
    os.makedirs(tdir)
    paths = []
    for i in range(n):
        data = os.urandom(1000)
        meta = {"announce": f"http://127.0.0.1:{free_port()}/announce",
                "info": {"name": f"t{i:05}.bin", "length": len(data), "piece length": 16384,
                         "pieces": hashlib.sha1(data).digest()}}
        p = os.path.join(tdir, f"t{i:05}.torrent")
        with open(p, "wb") as f:
            f.write(bencode(meta))
        paths.append(p)
    folder = os.path.join(base, "client")
    cmd = [BT, "client", "--profile", "c", "--folder", folder, "--port", "0", "--peer",
           f"127.0.0.1:{free_port()}", "--stall-timeout", "600"] + paths
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         preexec_fn=limit(nofile), start_new_session=True)
    listening = None
    rss = 0
    try:
        for line in p.stdout:
            if b"listening on" in line:
                listening = time.monotonic() - t
                rss = vmhwm_kib(p.pid)
                break
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    # A second start: the torrents are in the library already (nothing to copy).
    t = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         preexec_fn=limit(nofile), start_new_session=True)
    again = None
    try:
        for line in p.stdout:
            if b"listening on" in line:
                again = time.monotonic() - t
                break
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    shutil.rmtree(base)
    return listening, again, rss / 1024


def fmt(s):
    return "—" if s is None else f"{s:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="10000,100000", help="file counts (comma-separated)")
    ap.add_argument("--torrents", default="250,1000,2000", help="torrent counts (comma-separated)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions of each timing (median)")
    ap.add_argument("--nofile", type=int, default=1024, help="soft open-file limit of every tool")
    ap.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="bt-scale-", dir=args.work)
    try:
        print(f"## scale — {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
              f"ulimit -n {args.nofile}, piece {PIECE // 1024} KiB, page cache warm\n")
        for n in [int(x) for x in args.files.split(",") if x]:
            total, rows, same, checks = many_files(n, args.reps, args.nofile, work)
            print(f"### {n:,} files, {total / 1e6:.1f} MB\n")
            print("| tool | seconds | note |\n|---|---|---|")
            for name, s, note in rows + checks:
                print(f"| {name} | {fmt(s)} | {note} |")
            print(f"\nbt's info-hash equals mktorrent's: {same}\n", flush=True)
        ns = [int(x) for x in args.torrents.split(",") if x]
        if ns:
            print("### bt client given N torrents: start to `listening on`\n")
            print("| N | first start (import) s | second start (in library) s | peak RSS MiB |")
            print("|---|---|---|---|")
            for n in ns:
                first, again, rss = many_torrents(n, args.nofile, work)
                print(f"| {n:,} | {fmt(first)} | {fmt(again)} | {rss:.0f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
