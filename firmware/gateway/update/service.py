"""OtaService: firmware status, rollback reports, after-boot completion and platform updates.

- ``status()``: ``firmware.version``, ``firmware.slot``, the update state and install history.
- ``start()``: forwards rollback reports written by `mamori-gateway update`; when an update is
  in progress (e.g. a Raspberry Pi just rebooted into its trial slot) it runs the agent's
  after-boot pass, which health-checks and commits or rolls back.
- ``platform.update_requested`` (a verified ``update_req``, see ``remote.py``): runs the update
  against the request's URL with the installed trust root in a worker thread, one at a time,
  and reports the result on the WAN ``update`` stream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from firmware.common.update_requests import PRIORITY, REQUESTED, STREAM, result_body
from firmware.common.version import software_version
from firmware.core.errors import MamoriError
from firmware.core.events import Event
from firmware.core.update import machine
from firmware.gateway.runtime.gateway import Service
from firmware.gateway.update import outbox, status
from firmware.gateway.update.store import Paths, read_json, write_json

PENDING = "request.json"  # the platform request whose final result is still owed
SERVER_CA = "server-ca.pem"  # optional pinned CA of the update server
# Queues one up-link message (stream, body, priority): the WAN service's ``submit``.
Uplink = Callable[[str, dict[str, Any], int], Any]


class OtaService(Service):
    """Firmware status and updates (see module docstring)."""

    name = "firmware"

    def __init__(self, gw: Any) -> None:
        super().__init__(gw)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_result: dict[str, Any] = {}
        # Bound by the composition root once the WAN exists (the OTA service starts before it).
        self.uplink: Uplink | None = None

    def _enabled(self) -> bool:
        return self.gw.board.has_ab_slots

    async def start(self) -> None:
        """Forward reports, finish an update in progress, listen for platform requests."""
        if not self._enabled():
            return
        self._loop = asyncio.get_running_loop()
        paths = Paths(self.gw.state_dir, self.gw.board)
        self._forward_reports(paths)
        bus = getattr(self.gw, "bus", None)
        if bus is not None:
            bus.subscribe(self._on_event)
        record = read_json(paths.record, {"state": machine.IDLE}) if paths.record.exists() \
            else {"state": machine.IDLE}
        if record.get("state") not in machine.TERMINAL or machine.needs_settling(record) or \
                (paths.root / PENDING).exists():
            self._submit_work("", "")

    async def stop(self) -> None:
        """Let a running update finish its current step in its thread; accept no new one."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _forward_reports(self, paths: Paths) -> None:
        outbox.forward(paths.reports, self.gw.emit)

    def _on_event(self, event: Event) -> None:
        if event.kind != REQUESTED:
            return
        p = event.params or {}
        if p.get("board") != self.gw.board.name:
            return
        self._submit_work(str(p.get("url", "")), str(p.get("request_id", "")))

    def _submit_work(self, url: str, request_id: str) -> None:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, "ota")
        self._pool.submit(self._run, url, request_id)

    def _run(self, url: str, request_id: str) -> None:
        """One agent pass (worker thread); report the outcome of a platform request."""
        from firmware.gateway.update.agent import UpdateAgent, refusal

        paths = Paths(self.gw.state_dir, self.gw.board)
        pending = paths.root / PENDING
        if not request_id:
            request_id = str(read_json(pending, {}).get("request_id", "")) \
                if pending.exists() else ""
        ca = paths.root / SERVER_CA
        try:
            agent = UpdateAgent(self.gw.state_dir, self.gw.board, url,
                                ca_file=str(ca) if ca.is_file() else None,
                                emit=self._emit_threadsafe)
            result = agent.run()
        except MamoriError as exc:
            result = refusal(exc)
        except Exception as exc:  # noqa: BLE001 - report, never kill the gateway
            result = {"result": "refused", "reason": "update failed: " + type(exc).__name__}
        self.last_result = result
        if result.get("result") in ("rebooting", "rolling_back"):
            if request_id:
                write_json(pending, {"request_id": request_id})
            return
        if pending.exists():
            pending.unlink()
        if not request_id:
            return
        body = result_body(request_id, result)
        self._emit_threadsafe(Event("ota.update_result", "notice" if body["result"] in (
            "installed", "already-current") else "warning", source="ota", action="update",
            target=str(body.get("version", "")), result=body["result"],
            reason=str(body.get("reason", "")), params={"request_id": request_id}))
        if self.uplink is not None:
            try:
                self.uplink(STREAM, body, PRIORITY)
            except MamoriError:
                pass  # the queue is full or the WAN is down: the Event above is kept locally

    def _emit_threadsafe(self, event: Event) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.gw.emit, event)
        else:
            self.gw.emit(event)

    def status(self) -> dict[str, Any]:
        """Firmware version, running slot, update state and install history."""
        if not self._enabled():
            return {"version": software_version(), "source": "factory image", "slot": "",
                    "history": []}
        out = status(self.gw.state_dir, self.gw.board)
        if self.last_result:
            out["last_result"] = self.last_result.get("result")
        return out
