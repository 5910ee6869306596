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

A ``crl_push`` down-link message (``{"id", "crl"}``, strict JSON) is handed to ``crl_handler``
on the gateway's event loop (the revocation service installs it) and answered on the ``crl`` up-link
with the outcome. ``high_risk(device, action)`` says which actions are ★★★ for a device (its
model's set); a session taken over by another holder of this gateway's id is a
``wan.session_taken_over`` alert once the gateway is connected again.
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
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.common.update_requests import UpdateRequestHandler
from firmware.core import strictjson
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import (
    CommandAuthorizer,
    LocalOperations,
    ReplayCache,
    valid_token,
)
from firmware.core.errors import MamoriError
from firmware.core.events import PRIORITY, Event
from firmware.core.update.request import UpdateRequestChecker
from firmware.gateway.identity.atrest import StoreKey
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.wan import topics
from firmware.gateway.wan.client import WanClient
from firmware.gateway.wan.commands import CommandProcessor, Executor, ed25519_verifier
from firmware.gateway.wan.identity import WanIdentity, parse_broker_url
from firmware.gateway.wan.queue import DEFAULT_BUDGET, OutboundQueue
from firmware.gateway.wan.requests import parse_request

# the LAN channel's ``execute`` is a coroutine function; a plain callable works too
AsyncExecutor = Callable[..., Awaitable[dict[str, Any]]]

log = logging.getLogger("mamori.wan")

QUEUE_FILE = "wan/outbox.db"
QUEUE_KEY = "wan-outbox-fields"
FORWARD_BATCH = 256
MAX_HELD = 1024  # alerts kept in memory while the outbox's disk refuses writes
LOCAL_OP_KIND = "device.local_operation"
TRANSFERRED = "ownership.transferred"


BROKER_FILE = "wan/broker.json"  # where the platform was last reached (the reset's hand-off)


def envelope(gateway_id: str, stream: str, body: dict[str, Any], prio: int,
             msg_id: str) -> tuple[str, bytes]:
    """(topic, payload) of one up-link message."""
    doc = {"id": msg_id, "gateway": gateway_id, "type": stream, "prio": prio,
           "ts": time.time(), "body": body}
    return (topics.up(gateway_id, stream),
            json.dumps(doc, default=str, separators=(",", ":")).encode())


def outbox_key(state_dir: Path, board: Board | None) -> StoreKey:
    """The key the outbox seals its payloads under (events carry principals and reasons)."""
    return StoreKey(state_dir, board, QUEUE_KEY, "at-rest key of the WAN outbox's messages")


TOKEN_FILE = "wan/conn-token"  # noqa: S105 - a file name (not a secret)
# crl_handler(pem) -> the installer's answer ({"status": ..., "number": ...}); MamoriError refuses
CrlHandler = Callable[[bytes], Coroutine[Any, Any, dict[str, Any]]]
CRL_TIMEOUT = 30.0


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
                 max_ttl: float = 300.0, client_options: dict[str, Any] | None = None,
                 crl_handler: CrlHandler | None = None,
                 high_risk: Callable[[str, str], bool] | None = None,
                 known: Callable[[str], bool] | None = None) -> None:
        super().__init__(gw)
        self.crl_handler = crl_handler
        self.high_risk = high_risk
        self.known = known
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
        self.queue = OutboundQueue(self.queue_path, self.budget_bytes,
                                   key=outbox_key(self.gw.state_dir, self.gw.board))
        replay = ReplayCache(on_record=self.queue.save_nonce)
        replay.load(self.queue.load_nonces(time.time()), time.time())
        auth = CommandAuthorizer(self.identity.gateway_id,
                                 ed25519_verifier(self.identity.command_verify_key),
                                 time.time, self.acl, self.local_ops, replay,
                                 max_ttl=self.max_ttl, high_risk=self.high_risk,
                                 known=self.known)
        self.processor = CommandProcessor(auth, self._sync_execute, self.submit,
                                          self._emit_threadsafe)
        self.update_requests = UpdateRequestHandler(
            UpdateRequestChecker(self.identity.gateway_id, self.gw.board.name,
                                 ed25519_verifier(self.identity.command_verify_key),
                                 time.time, replay),
            self.submit, self._emit_threadsafe)
        options = dict(self.client_options)
        options.setdefault("on_takeover", self._taken_over)
        options.setdefault("token_file", Path(self.gw.state_dir) / TOKEN_FILE)
        self.client = WanClient(self.identity, self.queue, self._on_inbound,
                                status_extra=self._status_extra, **options)
        self.gw.bus.subscribe(self._on_event)
        self._forward_stop = False
        self._forward_thread = threading.Thread(target=self._forward_loop, name="wan-forward",
                                                daemon=True)
        self._forward_thread.start()
        self.client.start()
        atomic_write(Path(self.gw.state_dir) / BROKER_FILE, json.dumps(
            {"url": "mqtts://%s:%d" % (self.identity.broker_host, self.identity.broker_port)}
        ).encode())

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
        topic, payload = envelope(self.identity.gateway_id, stream, body, prio, mid)
        self.queue.put(mid, topic, payload, prio)
        if self.client is not None:
            self.client.notify()
        return mid

    def _on_event(self, event: Event) -> None:
        if event.kind == TRANSFERRED and self.queue is not None:
            # The old household's events may still wait here: re-seal them under a new key,
            # so what the WAL and freed blocks kept of them is unreadable from now on.
            self.queue.rekey()
        if event.kind == LOCAL_OP_KIND and event.target:
            self.local_ops.record(event.target, event.action, event.principal or event.source)
        route = event_route(event)
        if route is None or self.queue is None:
            return
        stream, prio = route
        mid = event.event_id or uuid.uuid4().hex
        topic, payload = envelope(self.identity.gateway_id, stream, event.to_dict(), prio, mid)
        item = (mid, topic, payload, prio)
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
        if kind == "crl_push":
            self._crl_request(payload)
            return
        try:
            req = parse_request(kind, payload)
        except MamoriError as exc:
            self._emit_threadsafe(Event("platform.request_rejected", severity="warning",
                                        source="platform", action=kind, result="refused",
                                        reason="malformed request: " + exc.message[:200]))
            return
        req_id = req["id"]
        stream = "selftest" if kind == "selftest_req" else "logs"
        self.submit(stream, {"request_id": req_id, "status": "accepted", "request": kind}, 2)
        # the self-test runner and the access log pick the request up from the bus
        self._emit_threadsafe(Event("platform." + kind.replace("_req", "_requested"),
                                    severity="info", source="platform", action=kind,
                                    result="accepted", params={"request_id": req_id,
                                                               "since": req.get("since")}))

    def _crl_request(self, payload: bytes) -> None:
        """Install a pushed CRL on the gateway's loop; answer on the ``crl`` up-link."""
        req_id = ""
        try:
            req = strictjson.loads_object(payload, "CRL push", max_depth=4)
            unknown = sorted(set(req) - {"id", "crl", "ts"})
            if unknown:
                raise MamoriError("unknown field %r in the CRL push" % unknown[0][:40])
            req_id = str(req["id"]) if valid_token(req.get("id")) else ""
            if not req_id or not isinstance(req.get("crl"), str):
                raise MamoriError("a CRL push is {\"id\": ID, \"crl\": PEM}")
            if self.crl_handler is None or self._loop is None:
                raise MamoriError("this gateway has no revocation service")
            fut = asyncio.run_coroutine_threadsafe(self.crl_handler(req["crl"].encode()),
                                                   self._loop)
            body = dict(fut.result(CRL_TIMEOUT), request_id=req_id, reason="")
        except MamoriError as exc:
            body = {"request_id": req_id, "status": "refused", "reason": exc.message}
        except Exception as exc:  # the install itself failed (disk full, timeout): say so
            body = {"request_id": req_id, "status": "failed",
                    "reason": "CRL install failed: %s" % type(exc).__name__}
        self.submit("crl", body, 0 if body["status"] in ("refused", "failed") else 1)

    def _taken_over(self, count: int) -> None:
        self._emit_threadsafe(Event(
            "wan.session_taken_over", severity="alert", source="wan", action="connect",
            target=self.identity.gateway_id, result="reconnected",
            reason="another client connected with this gateway's MQTT id %d time(s) and the "
                   "broker ended our session: the gateway's key may be copied" % count,
            params={"count": count}))

    def _sync_execute(self, device: str, action: str, params: dict[str, Any],
                      envelope: dict[str, Any] | None = None) -> dict[str, Any]:
        # called from the WAN inbound thread; an async executor (the LAN channel's
        # ``execute``) runs on the gateway's event loop
        extra = {"envelope": envelope} if envelope is not None else {}
        if asyncio.iscoroutinefunction(self.execute):
            assert self._loop is not None
            fut = asyncio.run_coroutine_threadsafe(self.execute(device, action, params,
                                                                **extra), self._loop)
            return dict(fut.result(self.execute_timeout))
        out = self.execute(device, action, params, **extra)
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
                "board": self.gw.board.name}


def build_wan_service(gw: Gateway, broker_url: str, identity: WanIdentity,
                      execute: Executor | AsyncExecutor, acl: DeviceAcl,
                      **options: Any) -> WanService:
    """The WAN service for ``mamori-gateway run --broker URL`` (URL overrides the bundle's)."""
    host, port = parse_broker_url(broker_url)
    identity = dataclasses.replace(identity, broker_host=host, broker_port=port)
    return WanService(gw, identity, execute, acl, **options)

