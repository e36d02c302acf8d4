#!/usr/bin/python3
"""The floor under any BitTorrent client on a bench/netem link: one TCP connection carrying the
file, nothing else (no tracker, no handshakes, no requests).

    tcp_floor.py seed DATA PORT          # serve DATA to every connection, until SIGTERM
    tcp_floor.py get  HOST PORT OUT      # fetch it into OUT, print `done`, then idle

The time a `get` takes, from its start to its last byte, is what the kernel's TCP (slow start,
loss recovery, the receive window's growth) costs on the link by itself; a BitTorrent client
can only add to it.
"""
import signal
import socket
import sys
import threading
import time


def seed(data, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen()
    print("listening", flush=True)

    def serve(conn):
        with conn, open(data, "rb") as f:
            conn.sendfile(f)

    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


def get(host, port, out):
    with socket.create_connection((host, port)) as s, open(out, "wb") as f:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            f.write(chunk)
    print("done", flush=True)
    while True:
        time.sleep(3600)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if sys.argv[1] == "seed":
        seed(sys.argv[2], int(sys.argv[3]))
    else:
        get(sys.argv[2], int(sys.argv[3]), sys.argv[4])


if __name__ == "__main__":
    main()
