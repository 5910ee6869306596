"""The gateway runtime: event bus, service lifecycle, status view (CPython, asyncio)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.core.errors import StateError
from firmware.core.events import Event
from firmware.core.liveness import LivenessTracker
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.known import KnownDevices
from firmware.gateway.runtime.sdnotify import Notifier, watchdog_interval
from firmware.gateway.runtime.supervisor import Supervisor, TaskFactory

log = logging.getLogger("mamori.gateway")

STATUS_FILE = "run/status.json"
PID_FILE = "run/gateway.pid"
LOCK_FILE = "run/gateway.lock"
# What of an event the status file shows. It is rewritten every tick and its old copies stay
# in freed blocks, so it carries no principal, reason or parameter (who did what, free text):
# those are in the encrypted access log (`mamori logs show`).
STATUS_EVENT_FIELDS = ("id", "kind", "severity", "ts", "source", "action", "result")


def status_event(event: dict[str, Any], devices: set[str]) -> dict[str, Any]:
    """The status view of an event: no personal data (a target only when it is a device)."""
    out = {k: event[k] for k in STATUS_EVENT_FIELDS if k in event}
    if event.get("target") in devices:
        out["target"] = event["target"]
    return out


class EventBus:
    """Synchronous fan-out of events; a failing subscriber never stops the others."""

    def __init__(self) -> None:
        self._subs: list[Callable[[Event], None]] = []

    def subscribe(self, callback: Callable[[Event], None]) -> None:
        """Call callback(event) for every event published from now on."""
        self._subs.append(callback)

    def publish(self, event: Event) -> None:
        """Deliver one event to every subscriber."""
        for cb in list(self._subs):
            try:
                cb(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", cb, event.kind)


class Service:
    """Base class of every gateway service plugged into the composition root."""

    name = "service"

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    async def start(self) -> None:
        """Start the service (return once it is serving)."""

    async def stop(self) -> None:
        """Stop the service and release its resources."""

    def status(self) -> dict[str, Any]:
        """Status shown under the service's name by `mamori-gateway status`."""
        return {}


class Gateway:
    """One running gateway: board profile, state directory, bus, devices and services."""

    def __init__(self, config: GatewayConfig, board: Board) -> None:
        self.config = config
        self.board = board
        self.state_dir = Path(config.state_dir)
        self.bus = EventBus()
        self.boot_id = uuid.uuid4().hex
        self.started_at = time.time()
        self.liveness = LivenessTracker()
        self.device_info: dict[str, dict[str, Any]] = {}
        self.known = KnownDevices(self.state_dir)
        self.gateway_id: str | None = None  # set once an installed identity is loaded
        self.services: list[Service] = []
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._seq = 0
        self.supervisor = Supervisor(self.emit)
        self.notifier = Notifier()
        self._stop = asyncio.Event()
        self._lock_fd: int | None = None
        self.restart = False  # stopped to start again (a bundle was just installed)

    # -- events --------------------------------------------------------------------------
    def emit(self, event: Event) -> Event:
        """Stamp an event (id, wall and monotonic time) and publish it to every subscriber."""
        self._seq += 1
        if not event.event_id:
            event.event_id = "%s-%d" % (self.boot_id[:12], self._seq)
        if not event.ts:
            event.ts = time.time()
        if not event.mono:
            event.mono = time.monotonic()
        event.params.setdefault("boot_id", self.boot_id)
        self.recent.append(event.to_dict())
        log.log(logging.WARNING if event.is_security else logging.INFO, "event",
                extra={"event": event.to_dict()})
        self.bus.publish(event)
        return event

    # -- devices -------------------------------------------------------------------------
    def register_device(self, device_id: str, transport: str, interval: float,
                        level: int, **info: Any) -> None:
        """Declare a device the gateway expects to hear from."""
        self.liveness.register(device_id, transport, interval, level, time.monotonic())
        self.device_info.setdefault(device_id, {}).update(info)
        self.known.remember(device_id, transport, interval, level, info)

    def _restore_known(self) -> None:
        """Declare the devices admitted before this start: listed, and alerted if they do
        not come back."""
        now = time.monotonic()
        for dev_id, d in self.known.load().items():
            dev = self.liveness.register(dev_id, d["transport"], d["interval"], d["level"], now)
            dev.reason = "known device, not connected since the gateway started"
            self.device_info.setdefault(dev_id, {}).update(
                {"maker": d["maker"], "model": d["model"]})

    def device_seen(self, device_id: str) -> None:
        """Record traffic from a device and publish any liveness transition."""
        for move in self.liveness.seen(device_id, time.monotonic()):
            self._liveness_event(move)

    def remove_device(self, device_id: str, reason: str) -> bool:
        """Mark a device removed (it no longer counts as expected) with the reason."""
        moves = self.liveness.remove(device_id, time.monotonic(), reason)
        for move in moves:
            self._liveness_event(move)
        return bool(moves)

    def _liveness_event(self, move: dict[str, Any]) -> None:
        if move["to"] == "removed":
            self.known.forget(move["device"])
        bad = move["to"] in ("suspect", "offline")
        self.emit(Event(
            "device." + move["to"], severity="alert" if move["to"] == "offline" else
            ("warning" if bad else "info"), source="gateway", action="liveness",
            target=move["device"], result=move["to"], reason=move["reason"],
            params={"from": move["from"], "latency_s": round(move["latency"], 3),
                    "transport": move["transport"]}))

    def devices(self) -> list[dict[str, Any]]:
        """Devices with liveness state and what their sessions reported."""
        out = []
        for d in self.liveness.snapshot():
            d.update(self.device_info.get(d["id"], {}))
            out.append(d)
        return out

    def spawn(self, name: str, factory: TaskFactory) -> asyncio.Task[None]:
        """Run a long-running task under the gateway's supervisor (restarted if it fails);
        cancelling the returned task ends it."""
        return self.supervisor.spawn(name, factory)

    # -- lifecycle -----------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask the gateway to shut down cleanly."""
        self._stop.set()

    def request_restart(self) -> None:
        """Stop every service and let the caller start them again (new identity)."""
        self.restart = True
        self._stop.set()

    def _acquire_lock(self) -> None:
        run = self.state_dir / "run"
        run.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError("another gateway is already running on %s" % self.state_dir,
                             "stop it first, or use another --state-dir")
        self._lock_fd = fd
        _atomic_write(self.state_dir / PID_FILE, str(os.getpid()).encode())

    def status(self) -> dict[str, Any]:
        """The whole status view, as written to run/status.json."""
        doc: dict[str, Any] = {
            "gateway": {
                "id": self.gateway_id or "",
                "board": self.board.name,
                "pid": os.getpid(),
                "boot_id": self.boot_id,
                "started_at": self.started_at,
                "uptime_s": round(time.time() - self.started_at, 1),
                "state": "stopping" if self._stop.is_set() else "running",
                "health": "ok" if self.supervisor.healthy() else "degraded",
                "board_profile": self.board.source,
            },
            "supervisor": self.supervisor.status(),
            "updated_at": time.time(),
            "devices": self.devices(),
            "events": [status_event(e, set(self.device_info) | set(self.liveness.devices))
                       for e in list(self.recent)[-50:]],
        }
        for s in self.services:
            try:
                doc[s.name] = s.status()
            except Exception as exc:  # a broken status() must not hide the others
                doc[s.name] = {"error": repr(exc)}
        return doc

    def write_status(self) -> None:
        """Write the status view atomically for `mamori-gateway status`."""
        _write_status_doc(self.state_dir / STATUS_FILE, self.status())

    async def write_status_async(self) -> None:
        """Same, with the file write and its fsync off the event loop (large sites)."""
        # Serialised here: services' status() may share live objects with the loop.
        data = json.dumps(self.status(), default=str, sort_keys=True).encode()
        await asyncio.to_thread(_atomic_write, self.state_dir / STATUS_FILE, data)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _liveness_loop(self) -> None:
        # Apart from the status writer: a full or read-only disk never stops offline detection.
        while not self._stop.is_set():
            for move in self.liveness.tick(time.monotonic()):
                self._liveness_event(move)
            self.supervisor.mark_healthy()
            await self._pause(min(1.0, self.config.status_interval))

    async def _status_loop(self) -> None:
        while not self._stop.is_set():
            await self.write_status_async()
            known = self.known.pending()  # new devices: at most one write per interval
            if known is not None:
                await asyncio.to_thread(self.known.write, known)
            await self._pause(self.config.status_interval)

    async def _watchdog_loop(self, interval: float) -> None:
        # Fed only while every supervised task is healthy: systemd restarts a degraded or
        # wedged gateway (a blocked event loop never gets here either).
        degraded_told = False
        while not self._stop.is_set():
            if self.supervisor.healthy():
                self.notifier.notify("WATCHDOG=1")
            elif not degraded_told:
                self.notifier.notify("STATUS=degraded: a supervised task keeps failing")
            degraded_told = not self.supervisor.healthy()
            await self._pause(interval)

    async def run(self, services: list[Service]) -> int:
        """Start the services, serve until stopped (signal or --duration), stop them."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._acquire_lock()
        self._restore_known()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        started: list[Service] = []
        try:
            for s in services:
                await s.start()
                started.append(s)
                self.services.append(s)
            self.emit(Event("gateway.started", source="gateway", action="start",
                            result="ok", params={"board": self.board.name,
                                                 "services": [s.name for s in started]}))
            self.spawn("gateway.liveness", self._liveness_loop)
            self.spawn("gateway.status", self._status_loop)
            interval = watchdog_interval()
            if interval is not None and self.notifier.enabled:
                self.spawn("gateway.watchdog", lambda: self._watchdog_loop(interval))
            self.notifier.notify("READY=1", "STATUS=serving")
            if self.config.duration:
                loop.call_later(self.config.duration, self.request_stop)
            await self._stop.wait()
            self.supervisor.stopping()
            self.notifier.notify("STOPPING=1")
            self.emit(Event("gateway.stopping", source="gateway",
                            action="restart" if self.restart else "stop", result="ok"))
            with contextlib.suppress(OSError):
                self.write_status()
        finally:
            for s in reversed(started):
                try:
                    await asyncio.wait_for(s.stop(), 10)
                except Exception:
                    log.exception("service %s failed to stop cleanly", s.name)
            await self.supervisor.stop()
            self._finish()
        return 0

    def _finish(self) -> None:
        self.known.flush()
        doc = self.status()
        doc["gateway"]["state"] = "stopped"
        try:
            _atomic_write(self.state_dir / STATUS_FILE,
                          json.dumps(doc, default=str, sort_keys=True).encode())
        except OSError as exc:  # full or read-only disk: still release the lock below
            log.error("cannot write the final status: %s", exc)
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / PID_FILE).unlink()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _atomic_write(path: Path, data: bytes) -> None:
    atomic_write(path, data)


def _write_status_doc(path: Path, doc: dict[str, Any]) -> None:
    _atomic_write(path, json.dumps(doc, default=str, sort_keys=True).encode())
