"""Listening sockets from /proc/net/{tcp,tcp6,udp,udp6}, compared with the declared allowlist."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass

from firmware.core.errors import StateError
from firmware.gateway.firewall.nft import netns_prefix

PROC_FILES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))
TCP_LISTEN = "0A"


@dataclass(frozen=True)
class Listener:
    """A socket waiting for peers: protocol, bound address and port."""

    proto: str
    address: str
    port: int

    @property
    def loopback_only(self) -> bool:
        """Bound to a loopback address (unreachable from any other host)."""
        addr = ipaddress.ip_address(self.address)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return addr.is_loopback

    def to_dict(self) -> dict:
        """Plain-data form."""
        return {"proto": self.proto, "address": self.address, "port": self.port,
                "key": f"{self.proto}/{self.port}"}


def _decode_addr(hexaddr: str, version: int) -> str:
    raw = bytes.fromhex(hexaddr)
    # The kernel prints each 32-bit word in host (little-endian) order.
    fixed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if version == 4:
        return str(ipaddress.IPv4Address(fixed))
    return str(ipaddress.IPv6Address(fixed))


def parse(text: str, proto: str, version: int) -> list[Listener]:
    """Listeners in one /proc/net table: TCP in LISTEN, UDP not connected to a peer."""
    out = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 4:
            continue
        local, remote, state = cols[1], cols[2], cols[3]
        lhex, _, lport = local.partition(":")
        _, _, rport = remote.partition(":")
        if proto == "tcp" and state != TCP_LISTEN:
            continue
        if proto == "udp" and int(rport, 16) != 0:
            continue
        out.append(Listener(proto, _decode_addr(lhex, version), int(lport, 16)))
    return out


def _read(name: str, netns: str | None) -> str:
    path = "/proc/net/" + name
    if not netns:
        try:
            with open(path, encoding="ascii") as fh:
                return fh.read()
        except FileNotFoundError:
            return ""  # e.g. IPv6 disabled
    proc = subprocess.run(netns_prefix(netns) + ["cat", path], capture_output=True, text=True,
                          timeout=10)
    if proc.returncode != 0:
        if "No such file" in proc.stderr:
            return ""
        raise StateError(f"cannot read {path} in namespace {netns}: {proc.stderr.strip()}")
    return proc.stdout


def current(netns: str | None = None) -> list[Listener]:
    """Every listener of this (or NETNS's) network namespace, deduplicated and sorted."""
    found: set[Listener] = set()
    for name, proto, version in PROC_FILES:
        found.update(parse(_read(name, netns), proto, version))
    return sorted(found, key=lambda x: (x.proto, x.port, x.address))


def compare(listeners: list[Listener], allowed: set[str], allow_loopback: bool = True) -> dict:
    """Split listeners into allowed and unexpected; ALLOWED holds 'tcp/8883' keys.

    Loopback-bound listeners are unreachable from other hosts, so they pass unless
    allow_loopback is False; anything bound to a wildcard or external address must be declared.
    """
    unexpected = []
    ok = []
    for lst in listeners:
        key = f"{lst.proto}/{lst.port}"
        if key in allowed or (allow_loopback and lst.loopback_only):
            ok.append(lst.to_dict())
        else:
            unexpected.append(lst.to_dict())
    return {"ok": not unexpected, "allowed": sorted(allowed), "unexpected": unexpected,
            "listening": ok + unexpected}
