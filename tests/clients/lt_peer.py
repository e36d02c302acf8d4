#!/usr/bin/python3
"""python3-libtorrent peer for the tracker interop tests, kept on loopback.

    lt_peer.py seed TORRENT DATA_DIR PORT   seed until killed
    lt_peer.py get  TORRENT OUT_DIR  PORT   exit 0 once every piece is verified

The settings go to the session constructor: a default session would start DHT, local peer
discovery, UPnP and NAT-PMP at once. Sockets bind to 127.0.0.1 only; uTP is off; several peers
may share 127.0.0.1. Peers come only from the torrent's tracker.
"""
import signal
import sys
import time

import libtorrent as lt

TIMEOUT_S = 300


def settings(port):
    return {
        "listen_interfaces": f"127.0.0.1:{port}",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "stop_tracker_timeout": 2,
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.tracker_notification),
    }


def main():
    if len(sys.argv) != 5 or sys.argv[1] not in ("seed", "get"):
        sys.exit(__doc__)
    mode, torrent, folder, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = lt.session(settings(port))
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = folder
    handle = ses.add_torrent(atp)
    started = time.monotonic()
    rc = 0
    done_at = None
    while not stop:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            print(f"[lt {mode}:{port}] {a.what()}: {a.message()}", file=sys.stderr, flush=True)
            # Leave only once the tracker has the `completed` announce: shutting down while it
            # is in flight aborts it, and then no `stopped` is sent either.
            if done_at is not None and isinstance(a, (lt.tracker_reply_alert, lt.tracker_error_alert)):
                stop.append(1)
        if mode == "get" and done_at is None and handle.status().is_seeding:
            done_at = time.monotonic()
        if done_at is not None and time.monotonic() - done_at > 10:
            break
        if time.monotonic() - started > TIMEOUT_S:
            print(f"[lt {mode}:{port}] timed out", file=sys.stderr)
            rc = 0 if mode == "seed" else 2
            break
    st = handle.status()
    print(f"[lt {mode}:{port}] done: down {st.total_payload_download} up {st.total_payload_upload}",
          file=sys.stderr, flush=True)
    del ses  # sends `stopped` to the tracker
    return rc


if __name__ == "__main__":
    sys.exit(main())
