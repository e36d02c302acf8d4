#!/usr/bin/python3
"""python3-libtorrent inside one of bench/netem's network namespaces.

    lt_peer.py seed TORRENT DATA_DIR PORT
    lt_peer.py get  TORRENT OUT_DIR  PORT

Listens on every address of the namespace (its only link is the emulated one), finds peers
through the torrent's tracker only, and runs until SIGTERM. `get` prints `done` on stdout the
moment every piece is downloaded and checked, then keeps seeding (a flash crowd's leechers
trade with each other). DHT, LSD, UPnP, NAT-PMP and uTP are off (TCP only, so `tbf` shapes
every client alike); otherwise libtorrent's defaults, as a user would have them.
"""
import signal
import sys

import libtorrent as lt


def main():
    mode, torrent, folder, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    ses = lt.session({
        "listen_interfaces": f"0.0.0.0:{port}",
        "enable_dht": False,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "in_enc_policy": int(lt.enc_policy.pe_enabled),
        "alert_mask": int(lt.alert.category_t.error_notification),
    })
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = folder
    handle = ses.add_torrent(atp)
    done = False
    while not stop:
        ses.wait_for_alert(20)
        for a in ses.pop_alerts():
            print(f"{a.what()}: {a.message()}", file=sys.stderr, flush=True)
        if mode == "get" and not done and handle.status().is_seeding:
            done = True
            print("done", flush=True)
    del ses


if __name__ == "__main__":
    main()
