"""The gateway's WAN service: bus events and command results up, platform commands down (CPython).

What goes up (through the persistent queue, at-least-once, de-duplicated by ``id``):

- security events (severity warning and worse) on ``alerts``, priority 0 (alert/critical) or 1;
- command results on ``cmd_result``, priority 1;
- log checkpoints (event kinds ``log.*``) on ``logs`` and self-test events (``selftest.*``) on
  ``selftest``, priority 2;
- other events of severity ``notice`` on ``events``, priority 2 (info and debug stay local).

Bus events are forwarded by the ``wan-forward`` thread: queued in memory by the subscriber (no
disk write on the event loop) and committed to the outbox in batches, one transaction each.

Local manual operations reach the command check as bus events: any Event with kind
``device.local_operation`` (``target`` = device, ``action``, ``principal``) gives that device's
local operation priority over conflicting remote commands for ``local_window`` seconds.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware.common.update_requests import UpdateRequestHandler
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import CommandAuthorizer, LocalOperations, ReplayCache
from firmware.core.errors import MamoriError
from firmware.core.events import PRIORITY, Event
from firmware.core.update.request import UpdateRequestChecker
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.wan import topics
from firmware.gateway.wan.client import WanClient
from firmware.gateway.wan.commands import CommandProcessor, Executor, ed25519_verifier
from firmware.gateway.wan.identity import WanIdentity, parse_broker_url
from firmware.gateway.wan.queue import DEFAULT_BUDGET, OutboundQueue

# the LAN channel's ``execute`` is a coroutine function; a plain callable works too
AsyncExecutor = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]

log = logging.getLogger("mamori.wan")

QUEUE_FILE = "wan/outbox.db"
FORWARD_BATCH = 256
MAX_HELD = 1024  # alerts kept in memory while the outbox's disk refuses writes
LOCAL_OP_KIND = "device.local_operation"


def event_route(event: Event) -> tuple[str, int] | None:
    """(stream, priority) an event is forwarded on, or None when it stays local."""
    if event.is_security:
        return "alerts", event.priority
    if event.kind.startswith("log."):
        return "logs", 2
    if event.kind.startswith("selftest."):
        return "selftest", 2
    if event.severity == "notice":
        return "events", PRIORITY["notice"]
    return None


class WanService(Service):
    """Connects the gateway to the platform broker (see module docstring)."""

    name = "wan"

    def __init__(self, gw: Gateway, identity: WanIdentity, execute: Executor | AsyncExecutor,
                 acl: DeviceAcl, *, budget_bytes: int = DEFAULT_BUDGET,
                 queue_path: Path | None = None, local_window: float = 120.0,
                 max_ttl: float = 300.0, client_options: dict[str, Any] | None = None) -> None:
        super().__init__(gw)
        self.identity = identity
        self.execute = execute
        self.acl = acl
        self.queue_path = queue_path or Path(gw.state_dir) / QUEUE_FILE
        self.budget_bytes = budget_bytes
        self.local_ops = LocalOperations(time.monotonic, local_window)
        self.max_ttl = max_ttl
        self.execute_timeout = 30.0
        self.client_options = client_options or {}
        self.queue: OutboundQueue | None = None
        self.client: WanClient | None = None
        self.processor: CommandProcessor | None = None
        self.update_requests: UpdateRequestHandler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.forward_errors = 0
        self._forward: collections.deque[tuple[str, str, bytes, int]] = collections.deque()
        self._forward_cond = threading.Condition()
        self._forward_thread: threading.Thread | None = None
        self._forward_stop = False

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the queue, subscribe to the bus and start connecting (never blocks on the net)."""
        self._loop = asyncio.get_running_loop()
        self.queue = OutboundQueue(self.queue_path, self.budget_bytes)
        replay = ReplayCache(on_record=self.queue.save_nonce)
        replay.load(self.queue.load_nonces(time.time()), time.time())
        auth = CommandAuthorizer(self.identity.gateway_id,
                                 ed25519_verifier(self.identity.command_verify_key),
                                 time.time, self.acl, self.local_ops, replay,
                                 max_ttl=self.max_ttl)
        self.processor = CommandProcessor(auth, self._sync_execute, self.submit,
                                          self._emit_threadsafe)
        self.update_requests = UpdateRequestHandler(
            UpdateRequestChecker(self.identity.gateway_id, str(self.gw.board.get("name", "")),
                                 ed25519_verifier(self.identity.command_verify_key),
                                 time.time, replay),
            self.submit, self._emit_threadsafe)
        self.client = WanClient(self.identity, self.queue, self._on_inbound,
                                status_extra=self._status_extra, **self.client_options)
        self.gw.bus.subscribe(self._on_event)
        self._forward_stop = False
        self._forward_thread = threading.Thread(target=self._forward_loop, name="wan-forward",
                                                daemon=True)
        self._forward_thread.start()
        self.client.start()

    async def stop(self) -> None:
        """Disconnect (publishing offline status) and close the queue; queued messages stay."""
        if self._forward_thread is not None:
            with self._forward_cond:
                self._forward_stop = True
                self._forward_cond.notify()
            await asyncio.to_thread(self._forward_thread.join, 10)
            self._forward_thread = None
            self._commit_forwarded()
        if self.client is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.client.stop)
        if self.queue is not None:
            self.queue.close()
            self.queue = None

    def status(self) -> dict[str, Any]:
        """Connection, queue and command counters."""
        out: dict[str, Any] = {"forward_errors": self.forward_errors}
        if self.client is not None:
            out.update(self.client.status() if self.queue is not None else
                       {"connected": False})
        if self.processor is not None:
            out["commands"] = dict(self.processor.counters)
        return out

    # -- up-link ----------------------------------------------------------------------------
    def submit(self, stream: str, body: dict[str, Any], prio: int,
               msg_id: str | None = None) -> str:
        """Queue one up-link message durably; returns its message id (QueueFull if no room)."""
        if self.queue is None:
            raise MamoriError("the WAN service is not running", "start the gateway first")
        mid = msg_id or uuid.uuid4().hex
        doc = {"id": mid, "gateway": self.identity.gateway_id, "type": stream,
               "prio": prio, "ts": time.time(), "body": body}
        payload = json.dumps(doc, default=str, separators=(",", ":")).encode()
        self.queue.put(mid, topics.up(self.identity.gateway_id, stream), payload, prio)
        if self.client is not None:
            self.client.notify()
        return mid

    def _on_event(self, event: Event) -> None:
        if event.kind == LOCAL_OP_KIND and event.target:
            self.local_ops.record(event.target, event.action, event.principal or event.source)
        route = event_route(event)
        if route is None or self.queue is None:
            return
        stream, prio = route
        mid = event.event_id or uuid.uuid4().hex
        doc = {"id": mid, "gateway": self.identity.gateway_id, "type": stream, "prio": prio,
               "ts": time.time(), "body": event.to_dict()}
        payload = json.dumps(doc, default=str, separators=(",", ":")).encode()
        item = (mid, topics.up(self.identity.gateway_id, stream), payload, prio)
        if self._forward_thread is None:
            self._forward.append(item)
            self._commit_forwarded()
            return
        with self._forward_cond:
            self._forward.append(item)
            self._forward_cond.notify()

    def _forward_loop(self) -> None:
        while True:
            with self._forward_cond:
                while not self._forward and not self._forward_stop:
                    self._forward_cond.wait()
                if self._forward_stop:
                    return
            if not self._commit_forwarded():
                with self._forward_cond:  # the disk refused: try again in a second
                    self._forward_cond.wait(1.0)

    def _commit_forwarded(self) -> bool:
        """Commit what the bus handed over, a batch per transaction; False when the disk refused.

        On a failing disk (full, read-only) alerts (priority 0/1) stay queued in memory, up to
        MAX_HELD, and are retried; less urgent messages are counted and dropped.
        """
        while self._forward and self.queue is not None:
            batch = [self._forward[i] for i in range(min(FORWARD_BATCH, len(self._forward)))]
            try:
                self.queue.put_many(batch)
            except Exception as exc:
                held = [m for m in batch if m[3] <= 1][-MAX_HELD:]
                self.forward_errors += len(batch) - len(held)
                log.error("cannot queue %d up-link messages: %r", len(batch), exc)
                with self._forward_cond:
                    for _ in batch:
                        self._forward.popleft()
                    self._forward.extendleft(reversed(held))
                return False
            with self._forward_cond:
                for _ in batch:
                    self._forward.popleft()
            if self.client is not None:
                self.client.notify()
        return True

    # -- down-link --------------------------------------------------------------------------
    def _on_inbound(self, kind: str, device: str | None, payload: bytes) -> None:
        if kind == "cmd" and self.processor is not None:
            self.processor.handle(device, payload)
            return
        if kind == "update_req":
            if self.update_requests is not None:
                self.update_requests.handle(payload)
            return
        try:
            req = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            req = None
        if not isinstance(req, dict):
            self._emit_threadsafe(Event("platform.request_rejected", severity="warning",
                                        source="platform", action=kind, result="refused",
                                        reason="malformed request"))
            return
        req_id = str(req.get("id", ""))[:64]
        stream = "selftest" if kind == "selftest_req" else "logs"
        self.submit(stream, {"request_id": req_id, "status": "accepted", "request": kind}, 2)
        # the self-test runner and the access log pick the request up from the bus
        self._emit_threadsafe(Event("platform." + kind.replace("_req", "_requested"),
                                    severity="info", source="platform", action=kind,
                                    result="accepted", params={"request_id": req_id,
                                                               "since": req.get("since")}))

    def _sync_execute(self, device: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        # called from the WAN inbound thread; an async executor (the LAN channel's
        # ``execute``) runs on the gateway's event loop
        if asyncio.iscoroutinefunction(self.execute):
            assert self._loop is not None
            fut = asyncio.run_coroutine_threadsafe(self.execute(device, action, params),
                                                   self._loop)
            return dict(fut.result(self.execute_timeout))
        out = self.execute(device, action, params)
        if not isinstance(out, dict):
            raise TypeError("executor returned " + type(out).__name__)
        return out

    def _emit_threadsafe(self, event: Event) -> None:
        loop = self._loop
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(self.gw.emit, event)
        else:
            self.gw.emit(event)

    def _status_extra(self) -> dict[str, Any]:
        return {"boot_id": getattr(self.gw, "boot_id", ""),
                "board": self.gw.board.get("name", "")}


def build_wan_service(gw: Gateway, broker_url: str, identity: WanIdentity,
                      execute: Executor | AsyncExecutor, acl: DeviceAcl,
                      **options: Any) -> WanService:
    """The WAN service for ``mamori-gateway run --broker URL`` (URL overrides the bundle's)."""
    host, port = parse_broker_url(broker_url)
    identity = dataclasses.replace(identity, broker_host=host, broker_port=port)
    return WanService(gw, identity, execute, acl, **options)

