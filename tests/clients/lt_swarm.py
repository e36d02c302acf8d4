#!/usr/bin/python3
"""python3-libtorrent seeder / downloader pinned to loopback; used by tests/engine_interop.rs.

    lt_swarm.py seed --torrent T --dir DATA --port P [--timeout S]
    lt_swarm.py get  --torrent T --dir OUT  --port P [--timeout S]

The settings are those of ../shared/interop/clients/lt_peer.py (tested there): everything that
could leave the machine is off in the settings given to the session *constructor* (a
default-constructed session would start DHT, LSD, UPnP and NAT-PMP at once): DHT, LSD, UPnP,
NAT-PMP, uTP, the IP notifier; sockets are bound to 127.0.0.1. Peers come from the torrent's
tracker only.

`seed` hash-checks the data, announces, and seeds until SIGTERM/SIGINT (exit 0) or --timeout.
`get` exits 0 as soon as every piece is downloaded and hash-checked, 2 on timeout.
Errors and a one-line JSON summary go to stderr.
"""
import argparse
import json
import signal
import sys
import time

import libtorrent as lt

LOOPBACK = "127.0.0.1"


def loopback_settings(port):
    """Session settings that keep libtorrent on 127.0.0.1:`port` (0: any free port)."""
    return {
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
        "stop_tracker_timeout": 1,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seed", "get"])
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True, help="seed: data dir; get: output dir")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()

    settings = loopback_settings(args.port)
    settings["alert_mask"] = int(lt.alert.category_t.error_notification
                                 | lt.alert.category_t.status_notification
                                 | lt.alert.category_t.tracker_notification)
    ses = lt.session(settings)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.dir
    h = ses.add_torrent(atp)

    stop = {"flag": False}

    def on_signal(*_):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t_start = time.monotonic()
    rc = 0
    while not stop["flag"]:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.tracker_error_alert, lt.file_error_alert,
                              lt.torrent_error_alert, lt.tracker_reply_alert)):
                print(f"[lt {args.mode}:{args.port}] {a.what()}: {a.message()}",
                      file=sys.stderr, flush=True)
        st = h.status()
        if args.mode == "get" and st.is_seeding:
            break
        if time.monotonic() - t_start > args.timeout:
            print(f"[lt {args.mode}:{args.port}] timeout after {args.timeout}s, "
                  f"progress {st.progress:.3f}", file=sys.stderr)
            rc = 0 if args.mode == "seed" else 2
            break

    st = h.status()
    summary = {
        "client": "libtorrent " + lt.__version__, "mode": args.mode, "port": args.port,
        "payload_down": st.total_payload_download, "payload_up": st.total_payload_upload,
        "wall_s": round(time.monotonic() - t_start, 3),
    }
    del ses  # graceful: flushes the disk and sends 'stopped' to the tracker
    print(json.dumps(summary), file=sys.stderr, flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
