"""Listeners for the firewall tests: TCP accept-and-close and UDP echo on wildcard addresses.

Usage: python -m tests.firewall.listen --tcp 8883,8443,22 --udp 5683,9999 ; prints 'ready'.
"""

from __future__ import annotations

import argparse
import selectors
import socket
import sys


def main() -> None:
    """Bind every requested port, print 'ready', serve until killed."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", default="")
    ap.add_argument("--udp", default="")
    ap.add_argument("--bind", default="0.0.0.0")
    args = ap.parse_args()
    sel = selectors.DefaultSelector()
    for spec, kind in ((args.tcp, socket.SOCK_STREAM), (args.udp, socket.SOCK_DGRAM)):
        for p in filter(None, spec.split(",")):
            s = socket.socket(socket.AF_INET, kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((args.bind, int(p)))
            if kind == socket.SOCK_STREAM:
                s.listen(128)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, kind)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            try:
                if key.data == socket.SOCK_STREAM:
                    conn, _ = s.accept()
                    conn.close()
                else:
                    data, addr = s.recvfrom(2048)
                    s.sendto(data, addr)
            except OSError:
                continue


if __name__ == "__main__":
    sys.exit(main())
