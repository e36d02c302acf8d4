#!/usr/bin/python3
"""Flash crowds on emulated links: bt, libtorrent and aria2 through the same scenarios.

    bench/netem/netem.py                         # every scenario and client, 3 runs each
    bench/netem/netem.py --clients bt --scenarios 1x6 --reps 1

Each host is a network namespace joined to a bridge by a veth pair, with 100 Mbit/s up and
down (`tbf` on both ends of its veth) and a fixed delay on every packet it receives (an NFQUEUE
daemon holds each packet DELAY ms; this kernel has no `sch_netem`), so a round trip between two
hosts is 2 x DELAY; loss is an `iptables` random drop on arrival. Host 0 runs `bt tracker`,
host 1 the seeder, hosts 2.. the leechers, all started together once the tracker lists the
seeder; leechers keep seeding to each other after they finish, as a real crowd does.

Per run: the last leecher's time (from the start of the leechers to its last piece) over the
lower bound (file size / the seeder's upload rate: the leechers can trade among themselves,
so the seeder need send one copy), and the copies the seeder sent in that time, from the byte
counter of its link (so TCP/IP headers count, about 3.5%). Medians of --reps runs, as a
Markdown table.

The `tcp` row is the floor: the file over one plain TCP connection (bench/netem/tcp_floor.py),
no tracker and no BitTorrent, so what the kernel's TCP costs on the link by itself (1 -> 1
scenarios only).

Scenarios: 1x1 (one seeder, one leecher, 20 ms round trip), 1x6 (six leechers, 20 ms), 1x1-lossy
(100 ms, 0.5% loss each way). Needs root, iproute2, iptables, ethtool, cargo (the delay daemon
is bench/netem/delayq, built on first use), aria2 and python3-libtorrent. Uses only namespaces
named btn-*, a bridge btn-br and 10.77.0.0/24; every namespace, link and process it made is
removed at exit, also on Ctrl-C.
"""
import argparse
import atexit
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"  # Debian's python, where python3-libtorrent lives
PREFIX = "btn"
BRIDGE = f"{PREFIX}-br"
SUBNET = "10.77.0"
PORT = 6881
TRACKER_PORT = 6969
TRACE = False  # --trace: the seeder's send rate, the leechers' receive and send rates every 0.5 s
IPT = "iptables-legacy" if shutil.which("iptables-legacy") else "iptables"

SCENARIOS = {  # name: (leechers, one-way delay ms, loss % per direction)
    "1x1": (1, 10, 0.0),
    "1x6": (6, 10, 0.0),
    "1x1-lossy": (1, 50, 0.5),
}


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ns(i):
    return f"{PREFIX}-{i}"


def addr(i):
    return f"{SUBNET}.{10 + i}"


class Net:
    """The emulated hosts; `down()` removes everything `up()` made."""

    def __init__(self, delayq):
        self.delayq = delayq
        self.daemons = []
        self.hosts = 0

    def up(self, hosts, delay_ms, loss_pct, rate_mbit):
        self.down()
        self.hosts = hosts
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "link", "set", BRIDGE, "up")
        # tbf queue of ~40 ms at the rate, bursts of ~10 packets
        limit = rate_mbit * 1_000_000 // 8 * 40 // 1000
        for i in range(hosts):
            n, veth = ns(i), f"{PREFIX}-v{i}"
            sh("ip", "netns", "add", n)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{PREFIX}-p{i}")
            sh("ip", "link", "set", f"{PREFIX}-p{i}", "netns", n)
            sh("ip", "-n", n, "link", "set", f"{PREFIX}-p{i}", "name", "eth0")
            sh("ip", "link", "set", veth, "master", BRIDGE)
            sh("ip", "link", "set", veth, "up")
            sh("ip", "-n", n, "link", "set", "lo", "up")
            sh("ip", "-n", n, "addr", "add", f"{addr(i)}/24", "dev", "eth0")
            sh("ip", "-n", n, "link", "set", "eth0", "up")
            # every packet wire-sized: no segmentation offloads
            sh("ethtool", "-K", veth, "tso", "off", "gso", "off", "gro", "off", check=False)
            sh("ip", "netns", "exec", n, "ethtool", "-K", "eth0", "tso", "off", "gso", "off",
               "gro", "off", check=False)
            tbf = ["tbf", "rate", f"{rate_mbit}mbit", "burst", "15000", "limit", str(limit)]
            sh("ip", "netns", "exec", n, "tc", "qdisc", "add", "dev", "eth0", "root", *tbf)
            sh("tc", "qdisc", "add", "dev", veth, "root", *tbf)
            if loss_pct:
                sh("ip", "netns", "exec", n, IPT, "-t", "raw", "-A", "PREROUTING", "-i", "eth0",
                   "-m", "statistic", "--mode", "random", "--probability", str(loss_pct / 100),
                   "-j", "DROP")
            if delay_ms:
                sh("ip", "netns", "exec", n, IPT, "-t", "raw", "-A", "PREROUTING", "-i", "eth0",
                   "-j", "NFQUEUE", "--queue-num", str(i))
                self.daemons.append(subprocess.Popen(
                    ["ip", "netns", "exec", n, self.delayq, str(i), str(delay_ms * 1000)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        time.sleep(0.3)

    def down(self):
        for d in self.daemons:
            stop_group(d)
        self.daemons = []
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.split() else ""
            if not name.startswith(f"{PREFIX}-") or not name[len(PREFIX) + 1:].isdigit():
                continue
            # anything still running in one of our namespaces is ours
            pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True,
                                  text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            sh("ip", "netns", "del", name, check=False)
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        for line in links.splitlines():
            name = line.split(": ")[1].split("@")[0]
            if name.startswith(f"{PREFIX}-v"):
                sh("ip", "link", "del", name, check=False)
        sh("ip", "link", "del", BRIDGE, check=False)

    def sent_by(self, i):
        """Bytes host `i` has sent into the bridge (its link's counter)."""
        with open(f"/sys/class/net/{PREFIX}-v{i}/statistics/rx_bytes") as f:
            return int(f.read())

    def received_by(self, i):
        """Bytes the bridge has sent to host `i`."""
        with open(f"/sys/class/net/{PREFIX}-v{i}/statistics/tx_bytes") as f:
            return int(f.read())


def stop_group(p):
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 2)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        try:
            p.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


class Host:
    """A process in host `i`'s namespace, its output in `log`."""

    def __init__(self, i, cmd, cwd, log):
        self.log_path = log
        self.out = open(log, "wb")
        self.p = subprocess.Popen(["ip", "netns", "exec", ns(i), *cmd], cwd=cwd, stdout=self.out,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        stop_group(self.p)
        self.out.close()


def aria2(folder, port):
    return ["aria2c", "--no-conf=true", "--enable-dht=false", "--enable-dht6=false",
            "--enable-peer-exchange=false", "--bt-enable-lpd=false", "--disable-ipv6=true",
            "--async-dns=false", "--console-log-level=warn", "--summary-interval=0",
            "--download-result=hide", "--auto-save-interval=0", "--allow-overwrite=true",
            f"--listen-port={port}", f"--dht-listen-port={port + 1000}", "-d", folder,
            "--file-allocation=none", "--seed-ratio=0.0", "--seed-time=1000"]


def seeder_cmd(client, bt, torrent, folder, data):
    if client == "tcp":
        return [PY, os.path.join(HERE, "tcp_floor.py"), "seed", data, str(PORT)]
    if client == "bt":
        return [bt, "peer", "--profile", "seed", "--folder", folder, "--port", str(PORT)]
    if client == "lt":
        return [PY, os.path.join(HERE, "lt_peer.py"), "seed", torrent, folder, str(PORT)]
    return aria2(folder, PORT) + ["--check-integrity=false", "--bt-seed-unverified=true", torrent]


def leecher_cmd(client, bt, torrent, folder, done_file, data):
    if client == "tcp":
        return [PY, os.path.join(HERE, "tcp_floor.py"), "get", addr(1), str(PORT),
                os.path.join(folder, os.path.basename(data))]
    if client == "bt":
        return [bt, "client", "--profile", "get", "--folder", folder, "--port", str(PORT),
                "--json", torrent]
    if client == "lt":
        return [PY, os.path.join(HERE, "lt_peer.py"), "get", torrent, folder, str(PORT)]
    hook = done_file + ".sh"
    with open(hook, "w") as f:
        f.write(f"#!/bin/sh\ntouch '{done_file}'\n")
    os.chmod(hook, 0o755)
    return aria2(folder, PORT) + [f"--on-bt-download-complete={hook}", torrent]


def finished(client, host, done_file):
    if client == "bt":
        return '"event":"complete"' in host.log()
    if client in ("lt", "tcp"):
        return "\ndone\n" in "\n" + host.log()
    return os.path.exists(done_file)


def tracker_lists_a_seed(work):
    """Scrape the tracker from inside host 1 (the seeder's namespace)."""
    probe = (f"import urllib.request;b=urllib.request.urlopen('http://{addr(0)}:{TRACKER_PORT}"
             "/scrape',timeout=2).read();i=b.find(b'8:completei');"
             "print(int(b[i+11:b.index(b'e',i+11)]) if i>=0 else 0)")
    r = subprocess.run(["ip", "netns", "exec", ns(1), PY, "-c", probe], capture_output=True,
                       text=True, cwd=work)
    return r.returncode == 0 and r.stdout.strip().isdigit() and int(r.stdout) >= 1


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def rates(now, before, dt):
    """Per-host MB/s between two lists of byte counters `dt` seconds apart, for --trace."""
    return " ".join(f"{(a - b) / dt / 1e6:5.2f}" for a, b in zip(now, before))


def run_once(net, client, bt, work, torrent, data, leechers, timeout, label):
    """One flash crowd. Returns (last leecher seconds, bytes the seeder sent meanwhile). Its
    logs stay in WORK/run-LABEL until the next run of the same label."""
    run = os.path.join(work, f"run-{label}")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    procs = []
    try:
        cfg = os.path.join(run, "tracker.toml")
        with open(cfg, "w") as f:
            f.write("[tracker]\ninterval = 30\n")
        procs.append(Host(0, [bt, "tracker", "--config", cfg, "--bind",
                              f"{addr(0)}:{TRACKER_PORT}"], run, os.path.join(run, "tracker.log")))
        seed = os.path.join(run, "seed")
        os.makedirs(seed)
        os.link(data, os.path.join(seed, os.path.basename(data)))
        shutil.copy(torrent, seed)
        seeder = Host(1, seeder_cmd(client, bt, torrent, seed, data), seed,
                      os.path.join(run, "seed.log"))
        procs.append(seeder)
        if client == "tcp":
            wait_for(lambda: "listening" in seeder.log(), 60, "the TCP seeder to listen")
        else:
            wait_for(lambda: tracker_lists_a_seed(work), 60, "the tracker to list the seeder")
        getters = []
        start = net.sent_by(1)
        got0 = [net.received_by(2 + k) for k in range(leechers)]
        sent0 = [net.sent_by(2 + k) for k in range(leechers)]
        t0 = time.monotonic()
        for k in range(leechers):
            folder = os.path.join(run, f"get{k}")
            os.makedirs(folder)
            done = os.path.join(run, f"get{k}.done")
            h = Host(2 + k, leecher_cmd(client, bt, torrent, folder, done, data), folder,
                     os.path.join(run, f"get{k}.log"))
            procs.append(h)
            getters.append((h, done, folder))
        left = set(range(leechers))
        trace, last_trace = [], t0
        while left:
            if TRACE and time.monotonic() - last_trace >= 0.1:
                last_trace = time.monotonic()
                trace.append((last_trace - t0, net.sent_by(1) - start,
                              [net.received_by(2 + k) - got0[k] for k in range(leechers)],
                              [net.sent_by(2 + k) - sent0[k] for k in range(leechers)]))
            if time.monotonic() - t0 > timeout:
                raise RuntimeError(f"{client}: {len(left)} leechers not done after {timeout} s; "
                                   f"see {run}")
            for k in list(left):
                if finished(client, getters[k][0], getters[k][1]):
                    left.discard(k)
            time.sleep(0.01)
        seconds = time.monotonic() - t0
        sent = net.sent_by(1) - start
        if TRACE:
            prev = (0.0, 0, [0] * leechers, [0] * leechers)
            for t, b, got, sends in trace:
                if t - prev[0] >= 0.5:
                    dt = t - prev[0]
                    down, up = rates(got, prev[2], dt), rates(sends, prev[3], dt)
                    print(f"  {t:5.2f} s: seeder {(b - prev[1]) / dt / 1e6:6.2f} MB/s; "
                          f"leechers receive {down}; send {up}", flush=True)
                    prev = (t, b, got, sends)
        for h, _, folder in getters:
            got = os.path.join(folder, os.path.basename(data))
            if subprocess.run(["cmp", "-s", data, got]).returncode:
                raise RuntimeError(f"{client}: {got} differs from the original")
        return seconds, sent
    finally:
        for p in reversed(procs):
            p.stop()


def build_delayq():
    """The delay daemon (bench/netem/delayq), built with cargo in its own target folder."""
    manifest = os.path.join(HERE, "delayq", "Cargo.toml")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", manifest],
                   check=True)
    return os.path.join(HERE, "delayq", "target", "release", "delayq")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bt", default=os.path.join(ROOT, "target/release/bt"))
    ap.add_argument("--clients", default="tcp,bt,lt,aria2",
                    help="tcp is no client: one TCP connection carrying the file (1 -> 1 only), "
                    "the floor under every client on the link")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--piece-length", default="256k")
    ap.add_argument("--rate-mbit", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=120, help="seconds per run")
    ap.add_argument("--work", default="/tmp/bt-netem")
    ap.add_argument("--trace", action="store_true", help="print the seeder's send rate and each leecher's receive and send rates every 0.5 s")
    args = ap.parse_args()
    global TRACE
    TRACE = args.trace
    if os.geteuid() != 0:
        sys.exit("netem.py needs root (network namespaces)")
    bt = os.path.abspath(args.bt)
    net = Net(build_delayq())

    def cleanup(*_):
        net.down()

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))

    os.makedirs(args.work, exist_ok=True)
    size = args.size_mib << 20
    data = os.path.join(args.work, "flash.bin")
    if not (os.path.exists(data) and os.path.getsize(data) == size):
        with open(data, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
    torrent = os.path.join(args.work, "flash.torrent")
    subprocess.run([bt, "create", data, "--piece-length", args.piece_length, "-o", torrent,
                    "--force", "--tracker", f"http://{addr(0)}:{TRACKER_PORT}/announce"],
                   check=True, stdout=subprocess.DEVNULL)
    bound = size * 8 / (args.rate_mbit * 1e6)
    load = os.getloadavg()[0]
    print(f"{args.size_mib} MiB, {args.piece_length} pieces, {args.rate_mbit} Mbit/s up and down "
          f"per host; lower bound {bound:.2f} s; load average {load:.1f} at start", flush=True)
    rows = []
    for sname in args.scenarios.split(","):
        leechers, delay, loss = SCENARIOS[sname]
        net.up(2 + leechers, delay, loss, args.rate_mbit)
        try:
            for client in args.clients.split(","):
                if client == "tcp" and leechers > 1:
                    continue  # the floor is for one connection; a crowd's is the bound itself
                ratios, copies = [], []
                for rep in range(args.reps):
                    secs, sent = run_once(net, client, bt, args.work, torrent, data, leechers,
                                          args.timeout, f"{sname}-{client}")
                    ratios.append(secs / bound)
                    copies.append(sent / size)
                    print(f"{sname} {client} run {rep + 1}: last leecher {secs:.2f} s = "
                          f"{secs / bound:.2f}x bound, seeder sent {sent / size:.2f} copies",
                          flush=True)
                rows.append((sname, client, statistics.median(ratios), min(ratios), max(ratios),
                             statistics.median(copies)))
        finally:
            net.down()
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}\n")
    print("| scenario | client | last leecher / bound (median) | min-max | seeder copies |")
    print("|---|---|---|---|---|")
    for sname, client, med, lo, hi, cp in rows:
        leechers, delay, loss = SCENARIOS[sname]
        what = f"1 -> {leechers}, {2 * delay} ms" + (f", {loss}% loss" if loss else "")
        print(f"| {what} | {client} | {med:.2f}x | {lo:.2f}-{hi:.2f} | {cp:.2f} |")


if __name__ == "__main__":
    main()
