"""A minimal gateway around the real WanService (real bus, queue, client, broker)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core.acl import DeviceAcl
from firmware.core.events import Event
from firmware.gateway.runtime.gateway import EventBus
from firmware.gateway.wan.identity import WanIdentity
from firmware.gateway.wan.service import WanService

_seq = itertools.count(1)


class FakeGateway:
    """Just what a Service uses: state_dir, board, bus, emit()."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.board = load_board("sim")
        self.boot_id = "boot%d" % next(_seq)
        self.bus = EventBus()
        self.events: list[Event] = []

    def emit(self, event: Event) -> Event:
        if not event.event_id:
            event.event_id = "%s-%d" % (self.boot_id, next(_seq))
        event.ts = event.ts or time.time()
        self.events.append(event)
        self.bus.publish(event)
        return event


class Door:
    """A simulated lock behind the execute() seam; records every call."""

    def __init__(self) -> None:
        self.state = "locked"
        self.calls: list[tuple[str, str]] = []
        self.envelopes: list[dict[str, Any] | None] = []

    def execute(self, device: str, action: str, params: dict[str, Any],
                envelope: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append((device, action))
        self.envelopes.append(envelope)
        if action in ("unlock", "lock"):
            self.state = action + "ed"
        return {"commanded": action, "actual": self.state, "ok": True}


def default_acl() -> DeviceAcl:
    return DeviceAcl([{"principal": "platform", "device": "door-1",
                       "actions": ["unlock", "lock", "status"]},
                      {"principal": "platform", "device": "door-2",
                       "actions": ["unlock", "lock"]}])


def run_gateway(ident: WanIdentity, state_dir: Path, fn: Callable[[FakeGateway, WanService], Any],
                execute: Any = None, acl: DeviceAcl | None = None, **opts: Any) -> Any:
    """Start a WanService on a fake gateway, run blocking fn(gw, svc) in a thread, stop."""
    opts.setdefault("client_options", {"backoff_min": 0.05, "backoff_max": 0.3})

    async def main() -> Any:
        gw = FakeGateway(state_dir)
        svc = WanService(gw, ident, execute or Door().execute, acl or default_acl(),  # type: ignore[arg-type]
                         **opts)
        await svc.start()
        try:
            return await asyncio.to_thread(fn, gw, svc)
        finally:
            await svc.stop()

    return asyncio.run(main())
