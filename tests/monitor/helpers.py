"""In-process LAN service + monitor for the monitor tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.core.rogue import RoguePipeline
from firmware.gateway.lan.service import LanService, registry_authorizer
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway

IDENT = {"lock-1": {"id": "lock-1", "kind": "lock", "transport": "ip", "maker": "M",
                    "model": "L", "interval": 0.2, "level": 3}}


def make(tmp_path: Path, pipeline: RoguePipeline | None = None,
         anomaly_grace: float = 5.0) -> tuple[Gateway, LanService, MonitorService, list[Event]]:
    """A gateway with a LAN service and a monitor (not started)."""
    gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    lan = LanService(gw, authorizer=registry_authorizer(gw, IDENT))
    mon = MonitorService(gw, lan=lan, pipeline=pipeline, period=0.05,
                         anomaly_grace=anomaly_grace)
    return gw, lan, mon, events


async def until(pred: Callable[[], Any], timeout: float = 20.0, what: str = "") -> None:
    """Wait until pred() is true (a generous deadline only guards against hangs)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + (what or repr(pred)))
        await asyncio.sleep(0.02)


class DeviceConn:
    """A device session driven by the test (so it can also send `local` frames)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self, port: int, host: str = "127.0.0.1") -> None:
        """Connect, say hello and start heartbeating / answering commands."""
        reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(self.agent.hello(time.monotonic()))
        self._tasks = [asyncio.create_task(self._read(reader)),
                       asyncio.create_task(self._beat())]
        await until(lambda: self.agent.ready, what="welcome")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(4096):
            self.send(self.agent.receive(data, time.monotonic()))

    async def _beat(self) -> None:
        while True:
            self.send(self.agent.poll(time.monotonic()))
            await asyncio.sleep(0.05)

    def send(self, data: bytes) -> None:
        """Write raw frames to the gateway."""
        if data and self.writer is not None:
            self.writer.write(data)

    async def close(self) -> None:
        """Stop and disconnect."""
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.writer is not None:
            self.writer.close()
