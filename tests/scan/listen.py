"""Staged listeners for the scan tests (run as a script inside the gateway namespace).

``listen.py udp4:161 udp6:5683:echo tcp6:2324``: bind each (IPv4 on 0.0.0.0, IPv6 on ``::`` with
IPV6_V6ONLY, so it exists on that family only); UDP listeners stay silent unless ``:echo``; TCP
listeners accept and close.
"""

from __future__ import annotations

import selectors
import socket
import sys


def _bind(spec: str) -> tuple[socket.socket, bool]:
    kind, port, *flags = spec.split(":")
    fam = socket.AF_INET6 if kind.endswith("6") else socket.AF_INET
    typ = socket.SOCK_STREAM if kind.startswith("tcp") else socket.SOCK_DGRAM
    s = socket.socket(fam, typ)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", int(port)))
    if typ == socket.SOCK_STREAM:
        s.listen(16)
    return s, "echo" in flags


def main(specs: list[str]) -> None:
    """Serve the listeners until killed."""
    sel = selectors.DefaultSelector()
    for spec in specs:
        s, echo = _bind(spec)
        sel.register(s, selectors.EVENT_READ, echo)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            assert isinstance(s, socket.socket)
            if s.type == socket.SOCK_STREAM:
                conn, _addr = s.accept()
                conn.close()
            else:
                data, addr = s.recvfrom(2048)
                if key.data:
                    s.sendto(data, addr)


if __name__ == "__main__":
    main(sys.argv[1:])
