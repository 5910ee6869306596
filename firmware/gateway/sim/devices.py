"""Simulated devices for the `sim` board: real device agents over loopback (CPython).

Given their credentials, the agents behave as real devices do: mutual TLS, the gateway pinned,
★★★ commands checked against the platform's signature by the agent itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Coroutine
from typing import Any

from firmware.core.events import Event
from firmware.device import credentials as devcreds
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_forever
from firmware.gateway.lan.service import LanService
from firmware.gateway.runtime.gateway import Gateway, Service


def sim_address(i: int) -> str:
    """The i-th simulated device's own LAN address (Linux routes all of 127.0.0.0/8 to lo):
    as in a real house every device has its own, so per-address limits apply as they would."""
    return "127.77.%d.%d" % (i // 250, i % 250 + 1)


class SimTasksService(Service):
    """A service running one task per simulated device until stop(), which ends them all."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.agents: dict[str, DeviceAgent] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(coro))

    def _started(self, devices: list[str]) -> None:
        self.gw.emit(Event("sim.devices", "info", "gateway", action="simulate",
                           result="started", params={"devices": devices}))

    async def stop(self) -> None:
        """Stop every simulated device."""
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


class SimDevicesService(SimTasksService):
    """Runs device agents in-process that connect to the gateway's LAN service."""

    name = "simdevices"

    def __init__(self, gw: Gateway, lan: LanService, identities: dict[str, dict[str, Any]],
                 ssl_contexts: dict[str, Any] | None = None,
                 server_hostname: str | None = None,
                 credentials: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(gw)
        self.lan = lan
        self.identities = identities
        self.ssl_contexts = dict(ssl_contexts or {})
        self.server_hostname = server_hostname
        self.credentials = credentials or {}

    async def start(self) -> None:
        """Start one agent task per simulated device, each from its own loopback address."""
        spread = sys.platform.startswith("linux") and self.lan.host == "127.0.0.1"
        for i, (dev_id, ident) in enumerate(sorted(self.identities.items())):
            creds = self.credentials.get(dev_id)
            pin, guard = None, None
            if creds is not None:
                self.ssl_contexts.setdefault(dev_id, devcreds.tls_context(creds))
                pin = devcreds.gateway_pin(creds)
                guard = devcreds.three_star_guard(creds, pin.gateway_id)
            agent = DeviceAgent(dev_id, kind=ident["kind"], interval=ident["interval"],
                                maker=ident["maker"], model=ident["model"],
                                transport=ident["transport"], guard=guard)
            self.agents[dev_id] = agent
            self._spawn(run_forever(agent, self.lan.host, self.lan.port,
                                    self.ssl_contexts.get(dev_id), self.server_hostname,
                                    stop=self._stop, pin=pin,
                                    local_addr=sim_address(i) if spread else None))
        self._started(sorted(self.identities))

    def status(self) -> dict[str, Any]:
        """Which simulated devices run and whether they are welcomed."""
        return {dev_id: {"ready": a.ready, "heartbeats": a.seq}
                for dev_id, a in sorted(self.agents.items())}
