"""LAN neighbour-table watcher: unknown hosts and address changes, in arpwatch's words (CPython).

Reads ``ip -j neigh show`` (optionally ``ip -n NETNS``; /proc/net/arp when ``ip`` is missing)
every ``period`` seconds. A host is *known* when it is on the allowlist (IP or MAC) or has an
authenticated device session; an unknown host still unknown ``grace`` seconds after it appeared
is a ``new station``. Address changes (``changed ethernet address``, ``flip flop``, ``reused old
ethernet address``) are reported for every host, known or not (that is what ARP spoofing looks
like). Findings go into the monitor's rogue pipeline (path ``arp``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from firmware.core.errors import StateError
from firmware.core.rogue import NeighbourTable
from firmware.gateway.monitor.service import MonitorService, peer_ip
from firmware.gateway.runtime.gateway import Gateway, Service

SKIP_STATES = {"FAILED", "INCOMPLETE", "NOARP"}
PROC_ARP = Path("/proc/net/arp")


def parse_ip_neigh(text: str) -> list[tuple[str, str]]:
    """(ip, mac) pairs from `ip -j neigh show` output; entries without a MAC are skipped."""
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        raise StateError("`ip -j neigh` printed something that is not JSON")
    out = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        mac, ip = row.get("lladdr"), row.get("dst")
        states = set(row.get("state") or [])
        if isinstance(mac, str) and isinstance(ip, str) and not states & SKIP_STATES:
            out.append((ip, mac.lower()))
    return out


def parse_proc_arp(text: str, dev: str | None = None) -> list[tuple[str, str]]:
    """(ip, mac) pairs from /proc/net/arp (complete entries only)."""
    out = []
    for line in text.splitlines()[1:]:
        f = line.split()
        if len(f) >= 6 and f[2] != "0x0" and f[3] != "00:00:00:00:00:00" \
                and (dev is None or f[5] == dev):
            out.append((f[0], f[3].lower()))
    return out


async def read_neighbours(dev: str | None = None,
                          netns: str | None = None) -> list[tuple[str, str]]:
    """One snapshot of the neighbour table."""
    ip = shutil.which("ip")
    if ip is None:
        if netns is not None:
            raise StateError("`ip` (iproute2) is needed to read a namespace's neighbours",
                             "install iproute2")
        return parse_proc_arp(PROC_ARP.read_text(), dev)
    cmd = [ip]
    if netns:
        cmd += ["-n", netns]
    cmd += ["-j", "neigh", "show"]
    if dev:
        cmd += ["dev", dev]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    if proc.returncode != 0:
        raise StateError("`%s` failed: %s" % (" ".join(cmd), err.decode(errors="replace")[:200]))
    return parse_ip_neigh(out.decode())


class NeighbourWatcher(Service):
    """Periodically diffs the LAN neighbour table and reports unknown or changed stations."""

    name = "neighbours"

    def __init__(self, gw: Gateway, monitor: MonitorService, dev: str | None = None,
                 netns: str | None = None, period: float = 10.0, grace: float = 15.0,
                 allow: Iterable[str] = ()) -> None:
        super().__init__(gw)
        self.monitor = monitor
        self.dev = dev
        self.netns = netns
        self.period = period
        self.table = NeighbourTable(grace=grace)
        self.allow = {a.lower() for a in allow}
        self.scans = 0
        self.error = ""
        self.findings: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start scanning (the first scan happens at once)."""
        self._stop.clear()
        self._task = self.gw.spawn("monitor.neighbours", self._loop)
        self.monitor.extra_status["neighbours"] = self.status

    async def stop(self) -> None:
        """Stop scanning."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    def session_ips(self) -> set[str]:
        """Addresses of devices with an authenticated LAN session."""
        lan = self.monitor.lan
        ids: Iterable[str] = lan.sessions.keys() if lan is not None else ()
        out = set()
        for dev_id in ids:
            peer = self.gw.device_info.get(dev_id, {}).get("peer")
            if isinstance(peer, str):
                out.add(peer_ip(peer))
        return out

    def _known(self, ip: str, mac: str) -> bool:
        return ip in self.allow or mac.lower() in self.allow or ip in self.session_ips()

    async def scan(self) -> list[dict[str, Any]]:
        """Read the table once and report findings; return them."""
        entries = await read_neighbours(self.dev, self.netns)
        self.scans += 1
        found = self.table.update(entries, time.monotonic(), self._known)
        for f in found:
            self.findings.append(f)
            self.monitor.observe("arp", f["ip"], f["finding"], identity=f["mac"],
                                 evidence={"ip": f["ip"], "mac": f["mac"],
                                           "old_mac": f["old_mac"], "known": f["known"],
                                           "finding": f["finding"], "dev": self.dev or "",
                                           "netns": self.netns or ""})
        return found

    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.scan()
                self.error = ""
            except (StateError, OSError, TimeoutError) as exc:
                self.error = str(exc)[:200]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period)

    def status(self) -> dict[str, Any]:
        """Stations tracked, scans done, last findings and the last error."""
        return {"dev": self.dev, "netns": self.netns, "scans": self.scans,
                "stations": len(self.table.stations), "pending": len(self.table.pending),
                "error": self.error, "findings": list(self.findings)}
