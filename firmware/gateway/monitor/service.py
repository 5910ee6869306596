"""The monitor service: rogue-device pipeline, radio watchdog and commanded-vs-actual alerts.

Subscribes to the bus: ``auth.refused`` (any admission path) and ``rogue.<path>`` events from the
Zigbee / USB / BLE services become rate-limited ``rogue.device`` alerts; repeat offenders are
blocked for a while (the LAN service asks ``admission(ip)`` before any TLS or hello work).
Liveness transitions are recorded with their detection latency; radio watchdog transitions
become ``radio.dead`` / ``radio.alive`` / ``radio.silent``. Command results and reported states
are checked against what was commanded (``device.anomaly``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.core.anomaly import CommandedState
from firmware.core.events import Event
from firmware.core.liveness import ProbeScheduler
from firmware.core.rogue import PATHS, RoguePipeline
from firmware.gateway.monitor.events import anomaly_event, radio_event, rogue_event
from firmware.gateway.runtime.gateway import Gateway, Service

log = logging.getLogger("mamori.monitor")

# prober(device_id) -> True when the device answered
Prober = Callable[[str], Awaitable[bool]]
LIVENESS_KINDS = ("device.online", "device.suspect", "device.offline", "device.removed")


def peer_ip(target: str) -> str:
    """The address part of an "ip:port" (or "[v6]:port") peer string."""
    if target.startswith("["):
        return target[1:].split("]", 1)[0]
    host, sep, port = target.rpartition(":")
    return host if sep and host and port.isdigit() else target


class MonitorService(Service):
    """Turns observations from every admission path and the liveness tracker into alerts."""

    name = "monitor"

    def __init__(self, gw: Gateway, lan: Any = None, pipeline: RoguePipeline | None = None,
                 period: float = 0.5, anomaly_grace: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(gw)
        self.lan = lan
        self.rogue = pipeline or RoguePipeline()
        self.anomaly = CommandedState(anomaly_grace)
        self.probes = ProbeScheduler(random.random)
        self.probers: dict[str, Prober] = {}
        self.period = period
        self.clock = clock
        self.detections: collections.deque[dict[str, Any]] = collections.deque(maxlen=20)
        self.extra_status: dict[str, Callable[[], dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._probe_tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._subscribed = False

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe to the bus, hook LAN admission and command results, start the loop."""
        if not self._subscribed:
            self.gw.bus.subscribe(self._on_event)
            self._subscribed = True
        if self.lan is not None:
            self.lan.admission = self.admission
            self.lan.observer = self.observe_lan
            self._wrap_execute(self.lan)
        self._stop.clear()
        self._task = self.gw.spawn("monitor.liveness", self._loop)

    async def stop(self) -> None:
        """Stop the loop and the probes in flight."""
        self._stop.set()
        if self.lan is not None and getattr(self.lan, "admission", None) == self.admission:
            self.lan.admission = None
            self.lan.observer = None
        for t in [self._task, *self._probe_tasks]:
            if t is not None:
                t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            if self._task is not None:
                await self._task
        self._task = None

    def _wrap_execute(self, lan: Any) -> None:
        # Every caller resolving lan.execute at call time gets its result checked.
        orig = lan.execute
        if getattr(orig, "_monitored", False):
            return

        async def execute(device_id: str, action: str, params: dict[str, Any] | None = None,
                          timeout: float = 5.0, **kw: Any) -> dict[str, Any]:
            res: dict[str, Any] = await orig(device_id, action, params, timeout, **kw)
            self.command_result(device_id, action, params, res)
            return res

        execute._monitored = True  # type: ignore[attr-defined]
        lan.execute = execute

    # -- inputs --------------------------------------------------------------------------
    def admission(self, ip: str) -> str | None:
        """LAN admission hook: a refusal reason while the peer's address is blocked."""
        return self.rogue.blocked("lan", ip, self.clock())

    def observe(self, path: str, source: str, reason: str, identity: str = "",
                evidence: dict[str, Any] | None = None) -> None:
        """Feed one observation from any admission path into the rogue pipeline."""
        for rec in self.rogue.observe(path, source, self.clock(), reason, identity, evidence):
            self.gw.emit(rogue_event(rec))

    def observe_lan(self, address: str, reason: str, identity: str,
                    evidence: dict[str, Any]) -> None:
        """LAN refusal hook: every refusal counts (the bus only carries aggregated records)."""
        self.observe("lan", address, reason, identity, evidence)

    def command_result(self, device: str, action: str, params: dict[str, Any] | None,
                       result: dict[str, Any]) -> None:
        """Check one command result (commanded vs actual)."""
        for rec in self.anomaly.result(device, action, params, bool(result.get("ok")),
                                       result.get("actual"), self.clock()):
            self.gw.emit(anomaly_event(rec))

    def add_probe(self, device_id: str, transport: str, interval: float) -> None:
        """Probe a device that only answers when asked, with the transport's prober."""
        if transport not in self.probers:
            raise KeyError("no prober for transport %s" % transport)
        self.probes.add(device_id, interval, self.clock())
        self.gw.device_info.setdefault(device_id, {})["probed"] = transport

    def _on_event(self, ev: Event) -> None:
        kind = ev.kind
        if kind == "auth.refused":
            path = ev.source if ev.source in PATHS else "lan"
            if path == "lan" and self.lan is not None and \
                    getattr(self.lan, "observer", None) == self.observe_lan:
                return  # already observed one by one through the LAN's hook
            if path == "lan":
                source = peer_ip(ev.target)
            else:
                source = ev.target if ev.target and ev.target != path else ev.principal
            evidence = dict(ev.params, peer=ev.target)
            evidence.pop("boot_id", None)
            self.observe(path, source or "?", ev.reason, ev.principal, evidence)
        elif kind.startswith("rogue.") and kind[6:] in PATHS:
            evidence = dict(ev.params)
            evidence.pop("boot_id", None)
            self.observe(kind[6:], ev.target or ev.principal or "?",
                         ev.reason or ev.result, ev.principal, evidence)
        elif kind in LIVENESS_KINDS:
            self.detections.append({"device": ev.target, "to": ev.result,
                                    "latency_s": ev.params.get("latency_s"),
                                    "reason": ev.reason, "ts": ev.ts})
        elif kind == "device.local_operation":
            state = ev.params.get("state")
            for rec in self.anomaly.local(ev.target, state, self.clock()):
                self.gw.emit(anomaly_event(rec))
        elif kind in ("command.executed", "command.failed"):
            self.command_result(ev.target, ev.action, None,
                                {"ok": kind == "command.executed",
                                 "actual": ev.params.get("actual")})

    # -- periodic work -------------------------------------------------------------------
    async def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the monitor must keep monitoring
                log.exception("monitor tick failed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.period)

    def tick(self) -> None:
        """One round: flush summaries and expiries, radio moves, reported states, probes."""
        now = self.clock()
        for rec in self.rogue.flush(now):
            self.gw.emit(rogue_event(rec))
        for move in self.gw.liveness.pop_radio_moves():
            self.gw.emit(radio_event(move))
            self.detections.append({"radio": move["radio"], "to": move["to"],
                                    "latency_s": round(move["latency"], 3),
                                    "reason": move["reason"], "ts": time.time()})
        for dev_id in list(self.anomaly.expect):
            reported = self.gw.device_info.get(dev_id, {}).get("reported")
            if reported is not None:
                for rec in self.anomaly.reported(dev_id, reported, now):
                    self.gw.emit(anomaly_event(rec))
        for dev_id in self.probes.due(now):
            transport = self.gw.device_info.get(dev_id, {}).get("probed", "")
            prober = self.probers.get(transport)
            if prober is None:
                self.probes.remove(dev_id)
                continue
            task = asyncio.get_running_loop().create_task(self._probe(dev_id, prober))
            self._probe_tasks.add(task)
            task.add_done_callback(self._probe_tasks.discard)

    async def _probe(self, dev_id: str, prober: Prober) -> None:
        try:
            ok = await prober(dev_id)
        except Exception as exc:
            log.info("probe of %s failed: %r", dev_id, exc)
            ok = False
        if ok:
            self.probes.answered(dev_id, self.clock())
            if dev_id in self.gw.liveness.devices:
                self.gw.device_seen(dev_id)
        else:
            self.probes.missed(dev_id, self.clock())

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Rogue counts, blocked peers, radio states, last detections, anomalies."""
        now = self.clock()
        doc: dict[str, Any] = {
            "rogue": self.rogue.summary(now),
            "radios": self.gw.liveness.radio_snapshot(),
            "detections": list(self.detections),
            "anomalies": {"counts": dict(self.anomaly.counts),
                          "open": [dict(r) for r in self.anomaly.open.values()]},
            "probes": len(self.probes.entries),
        }
        for name, fn in self.extra_status.items():
            try:
                doc[name] = fn()
            except Exception as exc:  # one broken part must not hide the rest
                doc[name] = {"error": repr(exc)}
        return doc
