"""Runs platform-requested self-tests and sends the signed report up the WAN (CPython)."""

from __future__ import annotations

import asyncio
from typing import Any

from firmware.core.errors import MamoriError
from firmware.core.events import Event
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.selftest.remote import handle_request

REQUEST_KIND = "platform.selftest_requested"


class _ThreadView:
    """What handle_request needs of the gateway, safe to use from a worker thread."""

    def __init__(self, gw: Gateway, emit: Any) -> None:
        self.state_dir = gw.state_dir
        self.board = gw.board
        self.emit = emit


class RemoteSelftestService(Service):
    """Answers `selftest_req` from the platform with a signed report on the `selftest` stream."""

    name = "remote_selftest"

    def __init__(self, gw: Gateway, wan: Any) -> None:
        super().__init__(gw)
        self.wan = wan
        self.runs = 0
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen for requests on the bus."""
        self.gw.bus.subscribe(self._on_event)

    async def stop(self) -> None:
        """Let a running self-test finish its report (bounded)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=30)

    def _on_event(self, event: Event) -> None:
        if event.kind != REQUEST_KIND:
            return
        request = {"id": str(event.params.get("request_id", ""))}
        task = asyncio.get_running_loop().create_task(self._run(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, request: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        # The checks block, so they run in a worker thread; events go back to the loop thread.
        view = _ThreadView(self.gw, lambda e: loop.call_soon_threadsafe(self.gw.emit, e))
        try:
            envelope = await asyncio.to_thread(handle_request, view, request)
        except MamoriError as exc:
            self.refused += 1
            self.wan.submit("selftest", {"request_id": request["id"], "status": "refused",
                                         "reason": str(exc)}, 2)
            return
        self.runs += 1
        self.wan.submit("selftest", dict(envelope, status="done"), 2)

    def status(self) -> dict[str, Any]:
        """Requests answered."""
        return {"runs": self.runs, "refused": self.refused}
