#!/usr/bin/python3
"""Loopback download benchmark: bt against libtorrent and aria2, in the same run.

    bench/swarm.py                      # 1 GiB, 3 repetitions, every scenario
    bench/swarm.py --size 256m --reps 1 --only bt-bt,lt-lt

Per scenario and torrent: a fresh `bt tracker` on 127.0.0.1, the seeders, then one downloader
into an empty folder, timed from its start to its exit (it exits once every piece is verified),
with its CPU time from wait4() and its peak RSS (VmHWM, polled); the bytes are then compared with the original.
Prints a Markdown table (median MB/s, min-max, CPU s, peak RSS, ratio to the anchors of the same
run) and appends it to bench/results.md. Also times `bt check` (hashing the data on disk) against
`sha1sum`, runs bt-bt on several file sizes (`--rss-sizes`) to show the client's memory does not
grow with the file, and ends with the speed issue's targets, each marked met or missed. Installs
aria2 and python3-libtorrent from Debian when they are missing and it runs as root. Every client
runs on 127.0.0.1 with DHT, PEX, LPD, UPnP/NAT-PMP and uTP off.
"""
import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"  # Debian's python, where python3-libtorrent lives
LT = [PY, os.path.join(ROOT, "tests/clients/lt.py")]  # the libtorrent wrapper the tests use
ARIA2 = ["aria2c", "--no-conf=true", "--enable-dht=false", "--enable-dht6=false",
         "--enable-peer-exchange=false", "--bt-enable-lpd=false", "--interface=127.0.0.1",
         "--disable-ipv6=true", "--bt-external-ip=127.0.0.1", "--async-dns=false",
         "--console-log-level=warn", "--summary-interval=0", "--download-result=hide",
         "--auto-save-interval=0", "--allow-overwrite=true"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def size_of(text):
    t = text.lower().rstrip("ib")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(t[-1:], 1)
    return int(t.rstrip("kmg")) * mult


class Proc:
    """A command in its own process group, stopped (TERM, then KILL) by stop()."""

    def __init__(self, cmd, log):
        self.log = open(log, "wb")
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 2)):
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def seeds_on_tracker(tracker_port):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{tracker_port}/scrape", timeout=2).read()
    except OSError:
        return 0
    # bencoded: count "8:completei<N>e" values; one torrent per run
    i = body.find(b"8:completei")
    return int(body[i + 11:body.index(b"e", i + 11)]) if i >= 0 else 0


# Upload cap of the "btcap" seeder, in KiB/s: a per-seeder limit such as a LAN link's, so that
# the seeders, not this machine's two cores, are what limits the download.
CAP_KIB = 150 * 1024


def seeder_cmd(kind, bt, torrent, folder, port):
    if kind == "bt":
        return [bt, "peer", "--profile", "seed", "--folder", folder, "--port", str(port)]
    if kind == "btcap":
        return seeder_cmd("bt", bt, torrent, folder, port) + ["--upload-limit", str(CAP_KIB)]
    if kind == "lt":
        return LT + ["seed", torrent, folder, str(port), "--timeout", "900"]
    if kind == "aria2":
        return ARIA2 + [f"--listen-port={port}", f"--dht-listen-port={port + 1000}", "-d", folder,
                        "--check-integrity=false", "--bt-seed-unverified=true", "--seed-ratio=0.0",
                        "--seed-time=100", torrent]
    raise ValueError(kind)


def getter_cmd(kind, bt, torrent, folder, port):
    if kind == "bt":
        return [bt, "client", "--profile", "get", "--folder", folder, "--port", str(port),
                "--exit-when-done", torrent]
    if kind == "lt":
        return LT + ["get", torrent, folder, str(port), "--timeout", "900"]
    if kind == "aria2":
        return ARIA2 + [f"--listen-port={port}", f"--dht-listen-port={port + 1000}", "-d", folder,
                        "--file-allocation=none", "--seed-time=0", "--bt-hash-check-seed=false",
                        torrent]
    raise ValueError(kind)


def run_once(bt, work, name, files, seeders, getter):
    """One timed download. Returns (seconds, cpu seconds, peak RSS MiB)."""
    run = os.path.join(work, "run")
    # The previous run's files (its 1 GiB download) are deleted just before this downloader
    # starts, not now. In this VM memory freed for a few seconds goes back to the host, and
    # page-cache pages then cost 2-3x more to fill: the downloader's write costs depended on how
    # long the seeders took to start (two seeders start one after the other), not on the client.
    old = run + ".old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(run):
        os.rename(run, old)
    os.makedirs(run)
    tport = free_port()
    torrent = os.path.join(run, name + ".torrent")
    subprocess.run([bt, "edit", os.path.join(work, name + ".torrent"), "--tracker",
                    f"http://127.0.0.1:{tport}/announce", "-o", torrent], check=True,
                   stdout=subprocess.DEVNULL)
    cfg = os.path.join(run, "tracker.toml")
    open(cfg, "w").write("[tracker]\ninterval = 30\n")
    procs = [Proc([bt, "tracker", "--config", cfg, "--bind", f"127.0.0.1:{tport}"],
                  os.path.join(run, "tracker.log"))]
    try:
        wait_for(lambda: listening(tport), 10, "the tracker")
        for k, kind in enumerate(seeders):
            folder = os.path.join(run, f"seed{k}")
            os.makedirs(folder)
            for f in files:  # hard links: the same cached pages for every seeder
                src = os.path.join(work, "data", f)
                dst = os.path.join(folder, f)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                os.link(src, dst)
            shutil.copy(torrent, folder)
            port = free_port()
            procs.append(Proc(seeder_cmd(kind, bt, torrent, folder, port), os.path.join(run, f"seed{k}.log")))
            wait_for(lambda: listening(port), 120, f"seeder {k}")
        wait_for(lambda: seeds_on_tracker(tport) >= len(seeders), 120, "the tracker to list the seeders")
        out = os.path.join(run, "out")
        os.makedirs(out)
        cmd = getter_cmd(getter, bt, torrent, out, free_port())
        log = open(os.path.join(run, "get.log"), "wb")
        shutil.rmtree(old, ignore_errors=True)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        deadline = t0 + 600
        status = ru = None
        # Peak RSS from VmHWM (per address space, reset at exec); wait4's ru_maxrss would
        # include this Python process, whose memory the child had before exec.
        hwm_kib = 0
        while time.monotonic() < deadline:
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("VmHWM:"):
                        hwm_kib = max(hwm_kib, int(line.split()[1]))
            except OSError:
                pass
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        if not ru:
            os.killpg(p.pid, signal.SIGKILL)
            raise RuntimeError(f"{getter} did not finish; see {run}/get.log")
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{getter} failed; see {run}/get.log")
        for f in files:
            if subprocess.run(["cmp", "-s", os.path.join(work, "data", f), os.path.join(out, f)]).returncode:
                raise RuntimeError(f"{f} differs after {getter}")
        return seconds, ru.ru_utime + ru.ru_stime, hwm_kib / 1024
    finally:
        for pr in reversed(procs):
            pr.stop()


SCENARIOS = {  # name: (seeders, downloader)
    "bt-bt": (["bt"], "bt"),
    "bt+bt-bt": (["bt", "bt"], "bt"),
    "lt-lt": (["lt"], "lt"),
    "lt+lt-lt": (["lt", "lt"], "lt"),
    "aria2-aria2": (["aria2"], "aria2"),
    "lt-bt": (["lt"], "bt"),
    "bt-lt": (["bt"], "lt"),
    "btcap-bt": (["btcap"], "bt"),
    "btcap+btcap-bt": (["btcap", "btcap"], "bt"),
}


def write_random(path, n):
    """A file of `n` random bytes at `path`, unless one of that size is there already."""
    if os.path.exists(path) and os.path.getsize(path) == n:
        return
    with open(path, "wb") as out:
        left = n
        while left:
            chunk = os.urandom(min(left, 1 << 22))
            out.write(chunk)
            left -= len(chunk)


def make_data(bt, work, size):
    data = os.path.join(work, "data")
    os.makedirs(os.path.join(data, "multi/sub"), exist_ok=True)
    specs = [("big.bin", size), ("multi/a.bin", 48 << 20), ("multi/sub/b.bin", 23456789), ("multi/c.txt", 1234)]
    for f, n in specs:
        path = os.path.join(data, f)
        write_random(path, n)
    torrents = {}
    for label, src, plen in (("big-256k", "big.bin", "256k"), ("big-1m", "big.bin", "1m"), ("multi-256k", "multi", "256k")):
        t = os.path.join(work, label + ".torrent")
        subprocess.run([bt, "create", os.path.join(data, src), "--piece-length", plen, "-o", t, "--force",
                        "--tracker", "http://127.0.0.1:9/announce"], check=True, stdout=subprocess.DEVNULL)
        files = ["big.bin"] if src == "big.bin" else ["multi/a.bin", "multi/sub/b.bin", "multi/c.txt"]
        torrents[label] = files
    return torrents


def recheck(bt, work):
    data = os.path.join(work, "data")
    t = os.path.join(work, "big-1m.torrent")
    subprocess.run(["cat", os.path.join(data, "big.bin")], stdout=subprocess.DEVNULL)  # warm cache
    rows = []
    for label, cmd in (("bt check", [bt, "check", t, "--folder", data]),
                       ("sha1sum", ["sha1sum", os.path.join(data, "big.bin")])):
        times = []
        for _ in range(3):
            t0 = time.monotonic()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            times.append(time.monotonic() - t0)
        rows.append((label, statistics.median(times)))
    return rows


def median_mbs(results, torrents, work, tname, sname):
    runs = results.get((tname, sname))
    if not runs:
        return None
    total = sum(os.path.getsize(os.path.join(work, "data", f)) for f in torrents[tname])
    return statistics.median(total / 1e6 / r[0] for r in runs)


def targets(results, torrents, work, recheck_s):
    """The speed issue's targets, each with what this run measured."""
    rows = []

    def ratio(tname, a, b, want, what):
        x, y = (median_mbs(results, torrents, work, tname, s) for s in (a, b))
        if x and y:
            rows.append((f"{tname}: {what}", f">= {want:.1f}x", f"{x / y:.2f}x", x / y >= want))

    for tname in torrents:
        ratio(tname, "bt-bt", "lt-lt", 2.0, "bt-bt vs lt-lt")
        ratio(tname, "bt+bt-bt", "bt-bt", 1.0, "bt+bt-bt vs bt-bt")
        ratio(tname, "bt+bt-bt", "lt+lt-lt", 2.0, "bt+bt-bt vs lt+lt-lt")
        ratio(tname, "lt-bt", "lt-lt", 1.2, "lt-bt vs lt-lt")
        ratio(tname, "btcap+btcap-bt", "btcap-bt", 1.8, "two capped bt seeders vs one")
    rss = [r[2] for (t, s), runs in results.items() if s.endswith("-bt") for r in runs]
    if rss:
        rows.append(("bt client peak RSS", "<= 24 MiB", f"{max(rss):.1f} MiB", max(rss) <= 24))
    if "bt check" in recheck_s and "sha1sum" in recheck_s:
        b, s = recheck_s["bt check"], recheck_s["sha1sum"]
        rows.append(("recheck: bt check vs sha1sum", "faster", f"{b:.2f} s vs {s:.2f} s", b < s))
    lines = ["\n| target | wanted | measured | |", "|---|---|---|---|"]
    lines += [f"| {what} | {want} | {got} | {'met' if ok else 'missed'} |" for what, want, got, ok in rows]
    return lines


def memory_sweep(bt, work, sizes):
    """bt-bt on files of several sizes: the client's peak RSS should not grow with the file."""
    lines = ["\n| file size (bt-bt, 1 MiB pieces) | MB/s | bt client peak RSS MiB |", "|---|---|---|"]
    for text in sizes:
        n = size_of(text)
        sub = os.path.join(work, f"rss-{text}")
        os.makedirs(os.path.join(sub, "data"), exist_ok=True)
        path = os.path.join(sub, "data", "big.bin")
        write_random(path, n)
        subprocess.run([bt, "create", path, "--piece-length", "1m", "-o", os.path.join(sub, "big.torrent"),
                        "--force", "--tracker", "http://127.0.0.1:9/announce"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds, _, rss = run_once(bt, sub, "big", ["big.bin"], ["bt"], "bt")
        lines.append(f"| {text} | {n / 1e6 / seconds:.1f} | {rss:.1f} |")
        print(f"rss sweep {text}: {rss:.1f} MiB", flush=True)
        shutil.rmtree(sub, ignore_errors=True)
    return lines


def ensure_clients():
    """Find aria2 and python3-libtorrent; install the missing ones from Debian when root."""
    def missing():
        out = [pkg for tool, pkg in (("aria2c", "aria2"), ("sha1sum", "coreutils"), ("cmp", "diffutils"))
               if not shutil.which(tool)]
        if not os.path.exists(PY) or subprocess.run([PY, "-c", "import libtorrent"], capture_output=True).returncode:
            out.append("python3-libtorrent")
        return out
    need = missing()
    if need and os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing {' '.join(need)}", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", *need], check=True, env=env)
        need = missing()
    if need:
        sys.exit(f"missing: {' '.join(need)} (apt-get install {' '.join(need)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1g")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default="", help="comma list of scenarios: " + ",".join(SCENARIOS))
    ap.add_argument("--torrents", default="big-256k,big-1m,multi-256k")
    ap.add_argument("--work", default="/tmp/bt-swarm-bench")
    ap.add_argument("--rss-sizes", default="256m,1g,4g",
                    help="file sizes for the bt-bt memory sweep (empty: skip it)")
    ap.add_argument("--baseline", default="",
                    help="another bt binary (say, the last release): its bt-only scenarios run "
                         "in the same run, rep by rep alternating with this build, as SCENARIO@base")
    args = ap.parse_args()
    ensure_clients()
    if not os.environ.get("BT_BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    bt = os.path.join(ROOT, "target/release/bt")
    os.makedirs(args.work, exist_ok=True)
    torrents = make_data(bt, args.work, size_of(args.size))
    scenarios = [s for s in args.only.split(",") if s] or list(SCENARIOS)
    results = {}
    for tname in args.torrents.split(","):
        for sname in scenarios:
            seeders, getter = SCENARIOS[sname]
            bt_only = all(x.startswith("bt") for x in seeders) and getter == "bt"
            binaries = [(sname, bt)]
            if args.baseline and bt_only:
                binaries.append((sname + "@base", os.path.abspath(args.baseline)))
            for name, _ in binaries:
                results[(tname, name)] = []
            for rep in range(args.reps):
                for name, binary in binaries:
                    try:
                        results[(tname, name)].append(
                            run_once(binary, args.work, tname, torrents[tname], seeders, getter))
                    except RuntimeError as e:
                        print(f"{tname} {name} rep {rep + 1}: {e}", flush=True)
            for name, _ in binaries:
                runs = results[(tname, name)]
                if runs:
                    total = sum(os.path.getsize(os.path.join(args.work, "data", f)) for f in torrents[tname])
                    mbs = [total / 1e6 / r[0] for r in runs]
                    print(f"{tname:11} {name:12} {statistics.median(mbs):8.1f} MB/s  ({min(mbs):.1f}-{max(mbs):.1f})  "
                          f"cpu {statistics.median(r[1] for r in runs):.2f} s  rss {max(r[2] for r in runs):.1f} MiB",
                          flush=True)
    lines = [f"\n## {time.strftime('%Y-%m-%d %H:%M')} — {args.size}, {args.reps} reps, {os.cpu_count()} cores\n",
             "| torrent | seeders -> downloader | MB/s median (min-max) | downloader CPU s | peak RSS MiB | vs lt-lt | vs aria2-aria2 | vs @base |",
             "|---|---|---|---|---|---|---|---|"]
    for (tname, sname), runs in results.items():
        if not runs:
            lines.append(f"| {tname} | {sname} | failed | | | | | |")
            continue
        total = sum(os.path.getsize(os.path.join(args.work, "data", f)) for f in torrents[tname])
        med = statistics.median(total / 1e6 / r[0] for r in runs)
        mbs = [total / 1e6 / r[0] for r in runs]

        def ratio(anchor):
            a = results.get((tname, anchor))
            return f"{med / statistics.median(total / 1e6 / r[0] for r in a):.2f}x" if a else "-"
        lines.append(f"| {tname} | {sname} | {med:.1f} ({min(mbs):.1f}-{max(mbs):.1f}) | "
                     f"{statistics.median(r[1] for r in runs):.2f} | {max(r[2] for r in runs):.1f} | "
                     f"{ratio('lt-lt')} | {ratio('aria2-aria2')} | "
                     f"{ratio(sname + '@base') if not sname.endswith('@base') else '-'} |")
    rc = recheck(bt, args.work)
    lines.append("\n| recheck of big.bin (page cache) | seconds |\n|---|---|")
    lines += [f"| {label} | {sec:.2f} |" for label, sec in rc]
    if args.rss_sizes:
        lines += memory_sweep(bt, args.work, args.rss_sizes.split(","))
    lines += targets(results, torrents, args.work, dict(rc))
    text = "\n".join(lines) + "\n"
    print(text)
    with open(os.path.join(HERE, "results.md"), "a") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    sys.exit(main())
