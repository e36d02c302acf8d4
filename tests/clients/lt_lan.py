#!/usr/bin/python3
"""python3-libtorrent on a test's LAN of network namespaces, finding peers with no tracker.

    lt_lan.py seed|get TORRENT DIR IP PORT [--dht HOST:PORT] [--lsd] [--timeout S]
    lt_lan.py node - - IP PORT

Listens on IP:PORT (the namespace's own address). With --dht, the DHT is on and bootstraps
from HOST:PORT only (a `bt dht` inside the LAN); with --lsd, local service discovery is on.
Everything else that could reach further (UPnP, NAT-PMP, uTP, trackers) is off, in the
settings given to the session constructor. `get` exits 0 once every piece is checked, 2 when
not done after S seconds; `seed` runs until SIGTERM; `node` is a DHT node with no torrent and
no bootstrap (the first node of the LAN's DHT), until SIGTERM. Every alert goes to stderr, one a line.

Used by tests/discovery.rs, only inside the namespaces it creates.
"""
import argparse
import signal
import sys
import time

import libtorrent as lt


def session(ip, port, dht, lsd):
    return lt.session({
        "listen_interfaces": f"{ip}:{port}",
        "outgoing_interfaces": ip,
        "enable_dht": dht is not None,
        "dht_bootstrap_nodes": dht or "",
        # a private test subnet: take every node and peer on it
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_enforce_node_id": False,
        "enable_lsd": lsd,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_ip_notifier": False,
        "enable_incoming_utp": False,
        "enable_outgoing_utp": False,
        "out_enc_policy": int(lt.enc_policy.pe_disabled),
        "in_enc_policy": int(lt.enc_policy.pe_enabled),
        "alert_mask": int(lt.alert.category_t.error_notification
                          | lt.alert.category_t.status_notification
                          | lt.alert.category_t.peer_notification
                          | lt.alert.category_t.dht_notification | lt.alert.category_t.tracker_notification | lt.alert.category_t.dht_log_notification),
    })


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["seed", "get", "node"])
    p.add_argument("torrent")
    p.add_argument("dir")
    p.add_argument("ip")
    p.add_argument("port", type=int)
    p.add_argument("--dht")
    p.add_argument("--lsd", action="store_true")
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    if a.mode == "node":
        ses = session(a.ip, a.port, "", False)
        print(f"[lt node] DHT node on {a.ip}:{a.port}", file=sys.stderr, flush=True)
        while not stop:
            ses.wait_for_alert(100)
            for al in ses.pop_alerts():
                print(f"[lt node] {al.what()}: {al.message()}", file=sys.stderr, flush=True)
        return 0
    ses = session(a.ip, a.port, a.dht, a.lsd)
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(a.torrent)
    atp.save_path = a.dir
    handle = ses.add_torrent(atp)
    tag = f"[lt {a.mode}]"
    started = time.monotonic()
    rc = 0
    while not stop:
        ses.wait_for_alert(100)
        for al in ses.pop_alerts():
            print(f"{tag} {al.what()}: {al.message()}", file=sys.stderr, flush=True)
        st = handle.status()
        if a.mode == "get" and st.is_seeding:
            print(f"{tag} complete, {st.total_payload_download} bytes", file=sys.stderr, flush=True)
            break
        if time.monotonic() - started > a.timeout:
            print(f"{tag} timeout, progress {st.progress:.3f}", file=sys.stderr, flush=True)
            rc = 0 if a.mode == "seed" else 2
            break
    del ses
    return rc


if __name__ == "__main__":
    sys.exit(main())
