#!/usr/bin/python3
"""How libtorrent (python3-libtorrent) sees .torrent files; used by tests/metainfo_interop.rs.

    lt_check.py info TORRENT...
        one JSON object per torrent, one per line: info_hash, name, total_size,
        piece_length, num_pieces, files [{path, size}] (path as libtorrent joins it)
    lt_check.py check [--timeout S] --job TORRENT DIR [--job TORRENT DIR]...
        adds every torrent to one session with DIR as save_path, waits until libtorrent has
        hash-checked each against the data on disk, and prints one JSON object per torrent:
        state, progress, is_seeding, pieces_have, num_pieces (and error, if any)

Nothing leaves the machine: every setting that could (DHT, LSD, UPnP, NAT-PMP, the IP
notifier, uTP) is off in the settings given to the session constructor (lt_swarm.py's
loopback_settings), sockets are bound to 127.0.0.1, and each torrent's trackers are removed
before it starts.
"""
import argparse
import json
import sys
import time

import libtorrent as lt

from lt_swarm import loopback_settings  # beside this file


def loopback_session():
    settings = loopback_settings(0)
    settings["alert_mask"] = int(lt.alert.category_t.error_notification
                                 | lt.alert.category_t.status_notification)
    return lt.session(settings)


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
    ses = loopback_session()
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
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    info = sub.add_parser("info")
    info.add_argument("torrents", nargs="+")
    chk = sub.add_parser("check")
    chk.add_argument("--timeout", type=float, default=30)
    chk.add_argument("--job", nargs=2, action="append", required=True,
                     metavar=("TORRENT", "DIR"), dest="jobs")
    args = ap.parse_args()
    rows = ([describe(t) for t in args.torrents] if args.mode == "info"
            else check(args.jobs, args.timeout))
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
