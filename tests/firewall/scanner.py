"""Fast TCP connect / UDP probe port scanner for the firewall tests (run inside a namespace).

TCP: non-blocking connects in batches; a completed handshake is 'open', a RST 'closed',
silence until the batch deadline 'filtered'. UDP: one datagram per port from one socket with
IP_RECVERR; a reply is 'open', an ICMP port-unreachable (read from the error queue, whose
address is the probe's destination) 'closed', silence 'silent' (filtered or a quiet listener).
Usage: python -m tests.firewall.scanner HOST [--tcp SPEC] [--udp SPEC] [--timeout S]
SPEC is like '1-65535' or '22,8883,9000-9010'. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import errno
import json
import resource
import selectors
import socket
import time

PROBE = b"mamori-scan"


def parse_spec(spec: str) -> list[int]:
    """'1-3,8' -> [1, 2, 3, 8]."""
    ports: set[int] = set()
    for part in spec.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        ports.update(range(int(lo), int(hi or lo) + 1))
    return sorted(p for p in ports if 0 < p < 65536)


def _batch_size() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096
    if soft < want + 64:
        new = min(hard, want + 64) if hard != resource.RLIM_INFINITY else want + 64
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    return max(16, min(want, soft - 64))


def scan_tcp(host: str, ports: list[int], timeout: float) -> dict:
    """Connect scan: {'open': [...], 'closed': n, 'filtered': n}."""
    opened: list[int] = []
    closed = filtered = 0
    batch = _batch_size()
    for start in range(0, len(ports), batch):
        sel = selectors.DefaultSelector()
        pending: dict[socket.socket, int] = {}
        for port in ports[start:start + batch]:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((host, port))
            if rc == 0:
                opened.append(port)
                s.close()
            elif rc in (errno.EINPROGRESS, errno.EAGAIN):
                pending[s] = port
                sel.register(s, selectors.EVENT_WRITE)
            else:
                closed += rc == errno.ECONNREFUSED
                filtered += rc != errno.ECONNREFUSED
                s.close()
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                s = key.fileobj  # type: ignore[assignment]
                port = pending.pop(s)  # type: ignore[call-overload]
                sel.unregister(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # type: ignore[union-attr]
                if err == 0:
                    opened.append(port)
                elif err == errno.ECONNREFUSED:
                    closed += 1
                else:
                    filtered += 1
                s.close()  # type: ignore[union-attr]
        filtered += len(pending)
        for s in pending:
            s.close()
        sel.close()
    return {"open": sorted(opened), "closed": closed, "filtered": filtered}


def scan_udp(host: str, ports: list[int], timeout: float) -> dict:
    """UDP probe scan: {'open': [...], 'closed': [...], 'silent': n}."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_IP, getattr(socket, "IP_RECVERR", 11), 1)  # Linux value
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    opened: set[int] = set()
    closed: set[int] = set()

    def drain(wait: float) -> None:
        s.settimeout(wait)
        while True:
            try:
                data, addr = s.recvfrom(2048)
                if addr[0] == host:
                    opened.add(addr[1])
                continue
            except TimeoutError:
                pass
            except OSError:
                pass  # an ICMP error is pending: read it from the error queue below
            got = False
            while True:
                try:
                    _, _, _, addr = s.recvmsg(2048, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                except (BlockingIOError, OSError):
                    break
                got = True
                if addr and addr[0] == host:
                    closed.add(addr[1])
            if not got:
                return
            s.settimeout(wait)

    for i, port in enumerate(ports):
        while True:
            try:
                s.sendto(PROBE, (host, port))
                break
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH):
                    drain(0.001)  # a queued ICMP error interrupted the send: consume it
                    continue
                if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
                    time.sleep(0.001)
                    continue
                raise
        if i % 256 == 255:
            drain(0.0005)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        drain(max(0.01, end - time.monotonic()))
    s.close()
    closed -= opened
    return {"open": sorted(opened), "closed": sorted(closed),
            "silent": len(ports) - len(opened) - len(closed)}


def main() -> None:
    """Command-line entry (prints JSON)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("--tcp", default="")
    ap.add_argument("--udp", default="")
    ap.add_argument("--timeout", type=float, default=0.5)
    args = ap.parse_args()
    out: dict = {"host": args.host}
    t0 = time.monotonic()
    if args.tcp:
        out["tcp"] = scan_tcp(args.host, parse_spec(args.tcp), args.timeout)
    if args.udp:
        out["udp"] = scan_udp(args.host, parse_spec(args.udp), args.timeout)
    out["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
