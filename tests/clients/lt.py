#!/usr/bin/python3
"""python3-libtorrent on loopback only, for the interop tests and the benchmark.

    lt.py seed TORRENT DATA_DIR PORT [--timeout S]
        hash-checks the data, announces, and seeds until SIGTERM/SIGINT or S seconds (exit 0)
    lt.py get  TORRENT OUT_DIR  PORT [--timeout S]
        (for `get`, TORRENT may be a magnet link: the metadata then comes from its peers)
        exits 0 once every piece is downloaded and hash-checked and the tracker has the
        `completed` announce (or 10 s later), 2 when not complete after S seconds
    lt.py info TORRENT...
        one JSON object per torrent, one per line: info_hash, name, total_size,
        piece_length, num_pieces, files [{path, size}] (path as libtorrent joins it)
    lt.py check [--timeout S] --job TORRENT DIR [--job TORRENT DIR]...
        adds every torrent to one session with DIR as save_path, its trackers removed, waits
        until libtorrent has hash-checked each against the data on disk, and prints one JSON
        object per torrent: state, progress, is_seeding, pieces_have, num_pieces (and error)

Used by tests/tracker_interop.rs and tests/engine_interop.rs (seed, get), by
tests/metainfo_interop.rs (info, check) and by bench/swarm.py (seed, get). `seed` and `get` log
every alert and, on exit, a one-line JSON summary to stderr; peers come from the torrent's
tracker only.

Nothing leaves the machine: everything that could is off in the settings given to the session
*constructor* (a default-constructed session would start DHT, LSD, UPnP and NAT-PMP at once).
"""
import argparse
import json
import signal
import sys
import time

import libtorrent as lt

LOOPBACK = "127.0.0.1"

# How long a finished `get` waits for the tracker's answer to its `completed` announce.
COMPLETED_WAIT_S = 10


def session(port):
    """A session on 127.0.0.1:`port` (0: any free port) with nothing that leaves the machine."""
    return lt.session({
        "listen_interfaces": f"{LOOPBACK}:{port}",
        "outgoing_interfaces": LOOPBACK,
        # discovery and port mapping: all off
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        # TCP only (uTP off)
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_tcp": True,
        "enable_outgoing_tcp": True,
        # every peer is on 127.0.0.1; without this libtorrent allows ONE peer per IP
        "allow_multiple_connections_per_ip": True,
        # plaintext BitTorrent handshake out (no MSE attempt first), accept both in
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "in_enc_policy": int(lt.enc_policy.pe_enabled),
        "prefer_rc4": False,
        # how long deleting the session waits for the `stopped` announce to be answered
        "stop_tracker_timeout": 2,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.tracker_notification),
    })


def transfer(mode, torrent, folder, port, timeout):
    """`seed` or `get` one torrent; returns the exit code."""
    tag = f"[lt {mode}:{port}]"
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = session(port)
    if torrent.startswith("magnet:"):
        # metadata from the peers (x.pe) or the trackers (tr) the link names
        atp = lt.parse_magnet_uri(torrent)
    else:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
    atp.save_path = folder
    handle = ses.add_torrent(atp)
    started = time.monotonic()
    done_at = None
    rc = 0
    while not stop:
        ses.wait_for_alert(50)
        for a in ses.pop_alerts():
            print(f"{tag} {a.what()}: {a.message()}", file=sys.stderr, flush=True)
            # Leave only once the tracker has the `completed` announce: shutting down while it
            # is in flight aborts it, and then no `stopped` is sent either.
            if done_at is not None and isinstance(a, (lt.tracker_reply_alert,
                                                      lt.tracker_error_alert)):
                stop.append(1)
        now = time.monotonic()
        if mode == "get" and done_at is None and handle.status().is_seeding:
            done_at = now
        if done_at is not None and now - done_at > COMPLETED_WAIT_S:
            break
        if done_at is None and now - started > timeout:
            print(f"{tag} timeout after {timeout}s, progress {handle.status().progress:.3f}",
                  file=sys.stderr, flush=True)
            rc = 0 if mode == "seed" else 2
            break
    st = handle.status()
    summary = {
        "client": "libtorrent " + lt.__version__, "mode": mode, "port": port,
        "payload_down": st.total_payload_download, "payload_up": st.total_payload_upload,
        "wall_s": round(time.monotonic() - started, 3),
    }
    del ses  # graceful: flushes the disk and sends `stopped` to the tracker
    print(json.dumps(summary), file=sys.stderr, flush=True)
    return rc


def describe(path):
    ti = lt.torrent_info(path)
    fs = ti.files()
    return {
        "torrent": path,
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "total_size": ti.total_size(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "files": [{"path": fs.file_path(i), "size": fs.file_size(i)}
                  for i in range(fs.num_files())],
    }


def check(jobs, timeout):
    ses = session(0)
    handles = {}
    for torrent, save_path in jobs:
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = save_path
        # Added paused so that the trackers can be dropped before anything could announce.
        atp.flags = (atp.flags | lt.torrent_flags.paused) & ~lt.torrent_flags.auto_managed
        h = ses.add_torrent(atp)
        h.replace_trackers([])
        handles[torrent] = h
    errors = {}
    checked = set()
    for h in handles.values():
        h.resume()
    deadline = time.monotonic() + timeout
    while len(checked) < len(handles) and time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                checked.add(a.handle)
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                errors[a.handle] = a.message()
                checked.add(a.handle)
    out = []
    for torrent, h in handles.items():
        st = h.status()
        row = {
            "torrent": torrent,
            "checked": h in checked,
            "state": str(st.state),
            "progress": st.progress,
            "is_seeding": st.is_seeding,
            "pieces_have": st.num_pieces,
            "num_pieces": h.torrent_file().num_pieces(),
        }
        if h in errors:
            row["error"] = errors[h]
        out.append(row)
    del ses
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    for mode in ("seed", "get"):
        p = sub.add_parser(mode)
        p.add_argument("torrent")
        p.add_argument("dir", help="seed: data folder; get: output folder")
        p.add_argument("port", type=int)
        p.add_argument("--timeout", type=float, default=600)
    info = sub.add_parser("info")
    info.add_argument("torrents", nargs="+")
    chk = sub.add_parser("check")
    chk.add_argument("--timeout", type=float, default=30)
    chk.add_argument("--job", nargs=2, action="append", required=True,
                     metavar=("TORRENT", "DIR"), dest="jobs")
    args = ap.parse_args()
    if args.mode in ("seed", "get"):
        return transfer(args.mode, args.torrent, args.dir, args.port, args.timeout)
    rows = ([describe(t) for t in args.torrents] if args.mode == "info"
            else check(args.jobs, args.timeout))
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
