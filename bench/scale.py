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

Many seeding torrents (--seeding): N one-piece torrents with their data in one folder, all
announcing to one `bt tracker` on 127.0.0.1. `bt peer` on that folder: the time from its start to
its `listening on` line (every torrent checked and seeding) and until the tracker lists all N;
its RSS then, per torrent against an empty peer; its CPU (utime+stime from /proc/PID/stat) over
--idle seconds once everything settled, with nobody to talk to; then SIGTERM: the time to exit
and how many of its N peers the tracker still lists (a `stopped` lost each). libtorrent (Debian's
python3-libtorrent, one session, no torrent queueing) seeds the same N torrents to the same
tracker, its idle CPU measured over the same window length.

Prints Markdown tables. Nothing leaves 127.0.0.1.
"""
import json
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


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def vmrss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_cpu(pid, seconds):
    """Percent of one core the process used over `seconds`."""
    hz = os.sysconf("SC_CLK_TCK")
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    t1, c1 = time.monotonic(), cpu_ticks(pid)
    return 100.0 * (c1 - c0) / hz / (t1 - t0)


def stop(p, timeout=60):
    """SIGTERM the process group; seconds until it exited."""
    t = time.monotonic()
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return None
    return time.monotonic() - t


def tracker_peers(addr):
    """Peers the tracker lists, over all torrents (from /peers)."""
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"GET /peers?limit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])["peer_count"]


def wait_until(cond, limit, step=0.2):
    t = time.monotonic()
    while time.monotonic() - t < limit:
        if cond():
            return time.monotonic() - t
        time.sleep(step)
    return None


def start_tracker(base):
    conf = os.path.join(base, "tracker.toml")
    with open(conf, "w") as f:
        f.write("[tracker]\ninterval = 1800\nmin_interval = 900\nmax_peers_per_ip = 100000\n")
    p = subprocess.Popen([BT, "tracker", "--bind", "127.0.0.1:0", "--config", conf],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    for line in p.stdout:
        if b"listening on" in line:
            host, port = line.split()[-1].decode().rsplit(":", 1)
            # Keep the pipe drained (the tracker logs events).
            subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
            return p, ("127.0.0.1", int(port))
    raise RuntimeError("bt tracker did not start")


LT_SEED = """
import importlib.util, os, sys, time
spec = importlib.util.spec_from_file_location("ltclient", sys.argv[1])
ltc = importlib.util.module_from_spec(spec); spec.loader.exec_module(ltc)
lt = ltc.lt
s = ltc.session(0)
s.apply_settings({"active_downloads": -1, "active_seeds": -1, "active_limit": -1,
                  "active_checking": 16})
folder = sys.argv[2]
names = sorted(n for n in os.listdir(folder) if n.endswith(".torrent"))
for n in names:
    s.async_add_torrent({"ti": lt.torrent_info(os.path.join(folder, n)), "save_path": folder})
while True:
    st = [h.status() for h in s.get_torrents()]
    if len(st) == len(names) and all(x.is_seeding for x in st):
        break
    time.sleep(1)
print("seeding", flush=True)
while True:
    time.sleep(3600)
"""


def many_seeding(n, idle, work, lt_max):
    """bt peer (and libtorrent) seeding n torrents; a dict of measurements."""
    base = os.path.join(work, f"seeding{n}")
    folder = os.path.join(base, "peer")
    os.makedirs(folder)
    tracker, addr = start_tracker(base)
    announce = f"http://{addr[0]}:{addr[1]}/announce"
    out = {}
    try:
        for i in range(n):
            data = os.urandom(100 + i % 900)
            name = f"t{i:05}.bin"
            meta = {"announce": announce,
                    "info": {"name": name, "length": len(data), "piece length": 16384,
                             "pieces": hashlib.sha1(data).digest()}}
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
            with open(os.path.join(folder, f"t{i:05}.torrent"), "wb") as f:
                f.write(bencode(meta))
        # An empty peer, for the RSS baseline.
        empty = os.path.join(base, "empty")
        os.makedirs(empty)
        p = subprocess.Popen([BT, "peer", "--profile", "e", "--folder", empty, "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        for line in p.stdout:
            if b"listening on" in line:
                break
        time.sleep(2)
        base_rss = vmrss_kib(p.pid)
        stop(p)

        t = time.monotonic()
        p = subprocess.Popen([BT, "peer", "--profile", "s", "--folder", folder, "--port", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        for line in p.stdout:
            if b"listening on" in line:
                out["seeding_s"] = time.monotonic() - t
                break
        subprocess.Popen(["cat"], stdin=p.stdout, stdout=subprocess.DEVNULL)
        got = wait_until(lambda: tracker_peers(addr) >= n, 600)
        out["announced_s"] = None if got is None else time.monotonic() - t
        time.sleep(5)
        rss = vmrss_kib(p.pid)
        out["rss_mib"] = rss / 1024
        out["per_torrent_kib"] = (rss - base_rss) / n
        out["bt_cpu"] = idle_cpu(p.pid, idle)
        out["exit_s"] = stop(p)
        out["stopped"] = n - tracker_peers(addr)

        if have_lt() and n <= lt_max:
            p = subprocess.Popen([PY, "-c", LT_SEED, os.path.join(ROOT, "tests/clients/lt.py"), folder],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            t = time.monotonic()
            for line in p.stdout:
                if b"seeding" in line:
                    out["lt_seeding_s"] = time.monotonic() - t
                    break
            time.sleep(5)
            out["lt_rss_mib"] = vmrss_kib(p.pid) / 1024
            out["lt_cpu"] = idle_cpu(p.pid, idle)
            stop(p)
    finally:
        stop(tracker)
        shutil.rmtree(base, ignore_errors=True)
    return out


def fmt(s):
    return "—" if s is None else f"{s:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", default="10000,100000", help="file counts (comma-separated)")
    ap.add_argument("--torrents", default="250,1000,2000", help="torrent counts (comma-separated)")
    ap.add_argument("--seeding", default="1000,10000",
                    help="torrent counts for the seeding peer (comma-separated; empty: skip)")
    ap.add_argument("--idle", type=float, default=60, help="seconds of idle CPU measured")
    ap.add_argument("--lt-max", type=int, default=10**9,
                    help="libtorrent seeds only up to this many torrents (10,000 takes it ~10 min)")
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
        ns = [int(x) for x in args.seeding.split(",") if x]
        if ns:
            print(f"\n### bt peer seeding N torrents to one bt tracker (idle CPU over {args.idle:.0f} s)\n")
            print("| N | start to seeding s | tracker lists all s | RSS MiB | KiB per torrent "
                  "| idle CPU % of a core | exit s | stopped received | libtorrent seeding s "
                  "| libtorrent RSS MiB | libtorrent idle CPU % |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for n in ns:
                r = many_seeding(n, args.idle, work, args.lt_max)
                g = lambda k, f="{:.2f}": "—" if r.get(k) is None else f.format(r[k])
                print(f"| {n:,} | {g('seeding_s')} | {g('announced_s')} | {g('rss_mib', '{:.0f}')} "
                      f"| {g('per_torrent_kib', '{:.1f}')} | {g('bt_cpu')} | {g('exit_s')} "
                      f"| {r.get('stopped', 0):,} of {n:,} | {g('lt_seeding_s')} "
                      f"| {g('lt_rss_mib', '{:.0f}')} | {g('lt_cpu')} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
