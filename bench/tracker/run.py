#!/usr/bin/env python3
"""Load `bt tracker` and opentracker with the same announces, in the same run, on 127.0.0.1.

    bench/tracker/run.py [--reps 3] [--seconds 10] [--connections 64] [--peers 100000]
                         [--fill-seconds 120] [--udp-peers 1000000] [--no-http] [--no-udp]

For each repetition, each tracker and each connection mode (keep-alive, and a new connection
per announce as most BitTorrent clients do), a fresh tracker gets a 2 s warm-up and then a
measured wrk run of random announces (announce.lua: 1000 torrents, random ports, peer ids and
left). Reported: announces/s, p50 and p99 latency (wrk), the tracker's CPU time per announce
(user+sys from /proc over the measured run), and answers that were not HTTP 200 or carried a
failure reason (must be 0). Then each tracker is filled with --peers distinct peers (fill.lua:
100 torrents, at most --fill-seconds) and its resident memory growth per peer is read from /proc.

UDP (BEP 15), same trackers, same port number: udp_load.rs (built here with a bare `rustc -O`)
keeps --udp-window announces in flight on each of --udp-threads sockets (each from its own
127.0.2.x address) for --seconds; reported the same way (announces/s, p50/p99 from the
generator, CPU per announce from /proc, error answers and lost datagrams). Then each tracker is
filled over UDP with --udp-peers distinct peers (100 torrents) and its RSS growth per peer read.

Needs: wrk, opentracker (Debian's: whitelist-only, compact-only, no keep-alive), a release
build of bt (built here unless BT=/path/to/bt). Everything it starts, it stops.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def free_port():
    """A port free for both TCP and UDP (opentracker binds both)."""
    while True:
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                try:
                    u.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue


def wait_listening(port, proc, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"tracker exited early with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Tracker:
    """A fresh tracker process on a free loopback port."""

    def __init__(self, kind, work, bt):
        self.kind, self.port = kind, free_port()
        log = open(os.path.join(work, f"{kind}.log"), "ab")
        if kind == "bt":
            config = os.path.join(work, "bt.toml")
            cmd = [bt, "tracker", "--config", config, "--bind", f"127.0.0.1:{self.port}"]
        else:
            cmd = ["opentracker", "-i", "127.0.0.1", "-p", str(self.port), "-P", str(self.port),
                   "-d", os.path.join(work, "ot"), "-w", "/whitelist.txt"]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        wait_listening(self.port, self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *_):
        stop(self.proc)

    def url(self):
        return f"http://127.0.0.1:{self.port}/"


def wrk(script, url, seconds, connections, env, threads=2):
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", script, url],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"RESULT requests=(\d+) rps=(\d+) p50_us=(\d+) p99_us=(\d+) failures=(\d+)",
                  out.stdout)
    if not m:
        sys.exit(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    return dict(zip(("requests", "rps", "p50_us", "p99_us", "failures"), map(int, m.groups())))


def measure(kind, work, bt, args, close):
    env = {"BENCH_HASHES": os.path.join(work, "hashes.txt"), "BENCH_CLOSE": "1" if close else "0"}
    script = os.path.join(HERE, "announce.lua")
    with Tracker(kind, work, bt) as t:
        wrk(script, t.url(), 2, args.connections, env)  # warm-up: the swarms fill up
        before = cpu_seconds(t.proc.pid)
        r = wrk(script, t.url(), args.seconds, args.connections, env)
        r["cpu_us"] = (cpu_seconds(t.proc.pid) - before) * 1e6 / max(r["requests"], 1)
    return r


def bdecode(b, i=0):
    """Just enough bencode for a scrape answer."""
    c = b[i:i + 1]
    if c == b"i":
        j = b.index(b"e", i)
        return int(b[i + 1:j]), j + 1
    if c in (b"l", b"d"):
        i, items = i + 1, []
        while b[i:i + 1] != b"e":
            v, i = bdecode(b, i)
            items.append(v)
        return (items if c == b"l" else dict(zip(items[::2], items[1::2]))), i + 1
    j = b.index(b":", i)
    n = int(b[i:j])
    return b[j + 1:j + 1 + n], j + 1 + n


def peers_in(t, hashes):
    """Peers the tracker holds over `hashes`, by scrape (50 a request: opentracker's limit)."""
    total = 0
    for k in range(0, len(hashes), 50):
        q = "&".join("info_hash=" + "".join("%" + h[i:i + 2] for i in range(0, 40, 2))
                     for h in hashes[k:k + 50])
        body = urllib.request.urlopen(f"{t.url()}scrape?{q}", timeout=5).read()
        files = bdecode(body)[0].get(b"files", {})
        total += sum(s.get(b"complete", 0) + s.get(b"incomplete", 0) for s in files.values())
    return total


def memory(kind, work, bt, peers, seconds):
    hashes = [l.strip() for l in open(os.path.join(work, "hashes.txt"))][:100]
    fill_hashes = os.path.join(work, "fill-hashes.txt")
    open(fill_hashes, "w").write("\n".join(hashes) + "\n")
    env = {**os.environ, "BENCH_HASHES": fill_hashes, "BENCH_PEERS": str(peers)}
    with Tracker(kind, work, bt) as t:
        time.sleep(0.3)
        before, started = rss_kib(t.proc.pid), time.monotonic()
        fill = subprocess.Popen(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s",
                                 os.path.join(HERE, "fill.lua"), t.url()],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            end, have = time.monotonic() + seconds, 0
            while time.monotonic() < end and fill.poll() is None:
                time.sleep(1)
                have = peers_in(t, hashes)
                if have >= peers:
                    break
        finally:
            stop(fill)
        took = time.monotonic() - started
        have = peers_in(t, hashes)
        after = rss_kib(t.proc.pid)
    if have < peers:
        print(f"warning: {kind} holds {have} of {peers} peers", file=sys.stderr)
    m = {"peers": have, "before_kib": before, "after_kib": after,
         "bytes_per_peer": (after - before) * 1024 / max(have, 1), "seconds": round(took)}
    print(f"  {kind:<11} fill: {m}", file=sys.stderr)
    return m


def build_udp_load(work):
    exe = os.path.join(work, "udp_load")
    subprocess.run(["rustc", "-O", "--edition", "2021", "-o", exe,
                    os.path.join(HERE, "udp_load.rs")], check=True)
    return exe


def udp_load(exe, port, hashes, mode, amount, threads, window):
    out = subprocess.run([exe, f"127.0.0.1:{port}", hashes, mode, str(amount), str(threads),
                          str(window)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"udp_load failed:\n{out.stdout}\n{out.stderr}")
    import json
    return json.loads(out.stdout)


def measure_udp(kind, work, bt, exe, args):
    hashes = os.path.join(work, "hashes.txt")
    with Tracker(kind, work, bt) as t:
        udp_load(exe, t.port, hashes, "random", 2, args.udp_threads, args.udp_window)  # warm-up
        before = cpu_seconds(t.proc.pid)
        r = udp_load(exe, t.port, hashes, "random", args.seconds, args.udp_threads,
                     args.udp_window)
        r["cpu_us"] = (cpu_seconds(t.proc.pid) - before) * 1e6 / max(r["answered"], 1)
        r["rps"] = r["answered"] / r["seconds"]
    return r


def memory_udp(kind, work, bt, exe, peers, threads, window):
    hashes = [l.strip() for l in open(os.path.join(work, "hashes.txt"))][:100]
    fill_hashes = os.path.join(work, "fill-hashes.txt")
    open(fill_hashes, "w").write("\n".join(hashes) + "\n")
    with Tracker(kind, work, bt) as t:
        time.sleep(0.3)
        before = rss_kib(t.proc.pid)
        r = udp_load(exe, t.port, fill_hashes, "fill", peers, threads, window)
        have = peers_in(t, hashes)
        after = rss_kib(t.proc.pid)
    if have < peers:
        print(f"warning: {kind} holds {have} of {peers} peers ({r})", file=sys.stderr)
    m = {"peers": have, "before_kib": before, "after_kib": after,
         "bytes_per_peer": (after - before) * 1024 / max(have, 1)}
    print(f"  {kind:<11} fill: {m}", file=sys.stderr)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--peers", type=int, default=100_000)
    ap.add_argument("--fill-seconds", type=int, default=120,
                    help="longest the HTTP fill may take (1M peers: 400)")
    ap.add_argument("--udp-peers", type=int, default=1_000_000)
    ap.add_argument("--udp-threads", type=int, default=2)
    ap.add_argument("--udp-window", type=int, default=64)
    ap.add_argument("--no-http", action="store_true", help="skip the HTTP runs")
    ap.add_argument("--no-udp", action="store_true", help="skip the UDP runs")
    ap.add_argument("--memory-only", action="store_true",
                    help="only the 1M-peer UDP fill (implies --no-http)")
    args = ap.parse_args()
    if args.memory_only:
        args.no_http = True

    bt = os.environ.get("BT")
    if not bt:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
        bt = os.path.join(ROOT, "target", "release", "bt")
    work = tempfile.mkdtemp(prefix="bt-tracker-bench-")
    with open(os.path.join(work, "hashes.txt"), "w") as f:
        hashes = [os.urandom(20).hex() for _ in range(1000)]
        f.write("\n".join(hashes) + "\n")
    os.makedirs(os.path.join(work, "ot"))
    with open(os.path.join(work, "ot", "whitelist.txt"), "w") as f:
        f.write("\n".join(hashes) + "\n")
    with open(os.path.join(work, "bt.toml"), "w") as f:
        # No peer may expire during a run; the swarms grow as large as the load makes them.
        # The load comes from a few loopback addresses: lift the per-address cap.
        f.write("[tracker]\ninterval = 1800\nmax_peers_per_torrent = 1000000\n"
                "max_peers_per_ip = 100000000\n")

    print(f"work dir {work}; {os.cpu_count()} CPUs; wrk -t2 -c{args.connections} "
          f"-d{args.seconds}s, {args.reps} reps", file=sys.stderr)
    rows = []
    for close in (() if args.no_http else (False, True)):
        runs = {"bt": [], "opentracker": []}
        for rep in range(args.reps):
            for kind in runs:  # alternate, so drift hits both alike
                r = measure(kind, work, bt, args, close)
                runs[kind].append(r)
                print(f"  {kind:<11} {'close' if close else 'keep-alive':<10} rep {rep + 1}: "
                      f"{r['rps']}/s p50 {r['p50_us'] / 1000:.1f} ms "
                      f"p99 {r['p99_us'] / 1000:.1f} ms, {r['cpu_us']:.1f} us CPU, "
                      f"{r['failures']} failures", file=sys.stderr)
        for kind, rs in runs.items():
            med = lambda k: statistics.median(r[k] for r in rs)
            rows.append((kind, "new connection per announce" if close else "keep-alive",
                         med("rps"), med("p50_us") / 1000, med("p99_us") / 1000, med("cpu_us"),
                         sum(r["failures"] for r in rs)))
    mem = {} if args.no_http else {
        kind: memory(kind, work, bt, args.peers, args.fill_seconds)
        for kind in ("bt", "opentracker")}
    udp_rows, udp_mem = [], {}
    if not args.no_udp:
        exe = build_udp_load(work)
        runs = {"bt": [], "opentracker": []}
        for rep in range(0 if args.memory_only else args.reps):
            for kind in runs:
                r = measure_udp(kind, work, bt, exe, args)
                runs[kind].append(r)
                print(f"  {kind:<11} udp rep {rep + 1}: {r['rps']:.0f}/s p50 "
                      f"{r['p50_us'] / 1000:.2f} ms p99 {r['p99_us'] / 1000:.2f} ms, "
                      f"{r['cpu_us']:.1f} us CPU, {r['errors']} errors, {r['lost']} lost",
                      file=sys.stderr)
        for kind, rs in runs.items():
            med = lambda k: statistics.median(r[k] for r in rs)
            if rs:
                udp_rows.append((kind, med("rps"), med("p50_us") / 1000, med("p99_us") / 1000,
                                 med("cpu_us"), sum(r["errors"] for r in rs),
                                 sum(r["lost"] for r in rs)))
        udp_mem = {kind: memory_udp(kind, work, bt, exe, args.udp_peers, args.udp_threads,
                                    args.udp_window) for kind in ("bt", "opentracker")}

    if udp_rows or udp_mem:
        print(f"UDP: {args.udp_threads} sockets x {args.udp_window} in flight, {args.seconds} s")
        print()
        print("| tracker | announces/s | p50 ms | p99 ms | CPU µs/announce | errors | lost |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for kind, rps, p50, p99, cpu, errs, lost in udp_rows:
            print(f"| {kind} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {cpu:.1f} | {errs} | {lost} |")
        print()
        print("| tracker (UDP fill) | peers held | RSS before | RSS after | bytes per peer |")
        print("|---|---:|---:|---:|---:|")
        for kind, m in udp_mem.items():
            print(f"| {kind} | {m['peers']} | {m['before_kib'] / 1024:.1f} MiB | "
                  f"{m['after_kib'] / 1024:.1f} MiB | {m['bytes_per_peer']:.0f} |")
        print()
    if args.no_http:
        return
    print("| tracker | connections | announces/s | p50 ms | p99 ms | CPU µs/announce | failures |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for kind, mode, rps, p50, p99, cpu, fails in rows:
        print(f"| {kind} | {mode} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {cpu:.1f} | {fails} |")
    print()
    print("| tracker | peers held | RSS before | RSS after | bytes per peer |")
    print("|---|---:|---:|---:|---:|")
    for kind, m in mem.items():
        print(f"| {kind} | {m['peers']} | {m['before_kib'] / 1024:.1f} MiB | "
              f"{m['after_kib'] / 1024:.1f} MiB | {m['bytes_per_peer']:.0f} |")


if __name__ == "__main__":
    main()
