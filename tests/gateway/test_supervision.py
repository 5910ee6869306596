"""Every long-running task is supervised: failures are alerts and restarts, never a silent end.

The status file becoming unwritable (a full or read-only disk) must not stop liveness; a task
that keeps failing marks the gateway degraded and stops feeding the systemd watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.runtime.supervisor import Supervisor


async def until(cond: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for a condition with a deadline (generous: the suite runs on busy machines)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.0f s" % timeout)
        await asyncio.sleep(0.02)


class NotifyListener:
    """A stand-in for systemd's notification socket: collects sd_notify datagrams."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        """Read what arrived; return every message so far."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                break
            self.messages.append((time.monotonic(), data.decode()))
        return [m for _, m in self.messages]

    def pings_since(self, t: float) -> int:
        """WATCHDOG=1 messages received after monotonic time t."""
        self.drain()
        return sum(1 for ts, m in self.messages if ts > t and "WATCHDOG=1" in m.split("\n"))


def test_unwritable_status_is_an_alert_liveness_goes_on_degraded_stops_watchdog(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pings every 0.1 s
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    state = tmp_path / "state"
    gw = Gateway(GatewayConfig("sim", state, status_interval=0.05), load_board("sim"))
    gw.supervisor.backoff_first, gw.supervisor.backoff_cap = 0.01, 0.05
    events: list[Event] = []
    gw.bus.subscribe(events.append)

    def kinds(kind: str) -> list[Event]:
        return [e for e in events if e.kind == kind]

    async def scenario() -> None:
        run = asyncio.create_task(gw.run([]))
        await until(lambda: "READY=1" in "\n".join(listener.drain()))
        await until(lambda: listener.pings_since(0) >= 2)  # healthy: the watchdog is fed
        status = state / "run" / "status.json"
        await until(status.is_file)
        while not status.is_dir():  # a write in flight may put the file back: try again
            status.unlink(missing_ok=True)
            with contextlib.suppress(FileExistsError):
                status.mkdir()  # every later status write fails, like on a full disk
        await until(lambda: bool(kinds("gateway.degraded")))
        listener.drain()  # what was sent before the gateway degraded
        degraded_at = time.monotonic()
        failed = kinds("task.failed")
        assert failed and failed[0].severity == "alert"
        assert failed[0].target == "gateway.status" and "IsADirectoryError" in failed[0].reason
        assert gw.status()["gateway"]["health"] == "degraded"
        assert gw.status()["supervisor"]["tasks"]["gateway.status"]["degraded"] is True
        # liveness keeps running: a silent device goes suspect, then offline
        gw.register_device("front-door-lock", "ip", 0.2, 2)
        gw.device_seen("front-door-lock")
        await until(lambda: bool(kinds("device.offline")))
        assert kinds("device.suspect")
        offline = kinds("device.offline")[0]
        assert offline.severity == "alert" and offline.params["latency_s"] < 5
        # the watchdog is no longer fed while degraded (systemd would restart the gateway)
        await asyncio.sleep(0.35)
        assert listener.pings_since(degraded_at) == 0
        gw.request_stop()
        await run

    asyncio.run(scenario())
    assert "STOPPING=1" in "\n".join(listener.drain())


def test_a_task_that_recovers_clears_degraded(tmp_path: Path) -> None:
    """Negative case: a task failing a few times, then running, is healthy again."""
    events: list[Event] = []
    clock = [0.0]
    sup = Supervisor(events.append, clock=lambda: clock[0], backoff_first=0.001,
                     backoff_cap=0.002, degraded_after=3, healthy_after=10.0)
    runs = {"n": 0}
    hold = asyncio.Event()

    async def flaky() -> None:
        runs["n"] += 1
        if runs["n"] <= 3:
            raise OSError(28, "No space left on device")
        await hold.wait()

    async def scenario() -> None:
        sup.spawn("flaky", flaky)
        await until(lambda: runs["n"] >= 4)
        assert not sup.healthy() and sup.status()["health"] == "degraded"
        clock[0] += 11.0  # it has now run long enough since the last failure
        sup.mark_healthy()
        assert sup.healthy()
        await sup.stop()

    asyncio.run(scenario())
    assert [e.kind for e in events].count("task.failed") == 3
    assert [e.kind for e in events][-1] == "gateway.recovered"


def test_a_service_loop_that_returns_is_restarted(tmp_path: Path) -> None:
    """A loop ending on its own while the gateway runs is a failure, not a quiet exit."""
    gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
    gw.supervisor.backoff_first = 0.001
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    calls = {"n": 0}

    class Quitter(Service):
        name = "quitter"

        async def start(self) -> None:
            self.gw.spawn("quitter.loop", self.loop)

        async def loop(self) -> None:
            calls["n"] += 1

    async def scenario() -> None:
        run = asyncio.create_task(gw.run([Quitter(gw)]))
        await until(lambda: calls["n"] >= 3)
        gw.request_stop()
        await run

    asyncio.run(scenario())
    failed = [e for e in events if e.kind == "task.failed" and e.target == "quitter.loop"]
    assert failed and "returned" in failed[0].reason
