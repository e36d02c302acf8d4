#!/usr/bin/python3
"""libtorrent seeder/downloader for the bt benchmark, on loopback only.

    lt.py seed TORRENT DIR PORT        seeds until SIGTERM
    lt.py get  TORRENT DIR PORT        exits 0 once every piece is downloaded and verified

Everything that could leave the machine is off, and set in the session constructor (a default
session would start DHT, LSD, UPnP and NAT-PMP at once): DHT, LSD, UPnP, NAT-PMP, uTP, the IP
notifier; sockets bound to 127.0.0.1; several peers per IP allowed (every peer is 127.0.0.1).
"""
import signal
import sys
import time

import libtorrent as lt


def session(port):
    return lt.session({
        "listen_interfaces": f"127.0.0.1:{port}",
        "outgoing_interfaces": "127.0.0.1",
        "enable_dht": False, "dht_bootstrap_nodes": "", "enable_lsd": False,
        "enable_upnp": False, "enable_natpmp": False, "enable_ip_notifier": False,
        "enable_incoming_utp": False, "enable_outgoing_utp": False,
        "allow_multiple_connections_per_ip": True,
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "stop_tracker_timeout": 1,
        "alert_mask": int(lt.alert.category_t.error_notification),
    })


def main():
    mode, torrent, folder, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    ses = session(port)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = folder
    h = ses.add_torrent(atp)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    deadline = time.monotonic() + 900
    while not stop and time.monotonic() < deadline:
        ses.wait_for_alert(50)
        ses.pop_alerts()
        if mode == "get" and h.status().is_seeding:
            del ses
            return 0
    return 0 if mode == "seed" else 2


if __name__ == "__main__":
    sys.exit(main())
