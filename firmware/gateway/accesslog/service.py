"""The access-log service: records every gateway Event and feeds the platform uploader.

Events are appended by a ``LogWriter`` (its own thread in a running gateway: no disk write on the
event loop). A failed append raises one ``accesslog.write_failed`` alert per outage (it reaches
the uplink from the bus while the log cannot take it) and ``accesslog.write_resumed`` when space
is back. Segments holding alert-level records are not pruned before the platform has them, and
closing one uploads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import list_segments, load_bundle
from firmware.core.events import Event
from firmware.gateway.accesslog.keys import atomic_write, shred
from firmware.gateway.accesslog.store import AccessLogStore, AppendFailed
from firmware.gateway.accesslog.writer import LogWriter
from firmware.gateway.runtime.gateway import Gateway, Service

log = logging.getLogger("mamori.accesslog")

# An uploader takes one item and returns True once the platform has it. Items:
#   {"type": "keys", "log_id", "bundle": {log_id, pub, key0, data_key, created}}  (secret!)
#   {"type": "head", "log_id", "checkpoint": {...}}                      (at every checkpoint)
#   {"type": "segment", "log_id", "name", "data": bytes, "complete": bool}  (schedule/request)
Uploader = Callable[[dict[str, Any]], bool]


class AccessLogService(Service):
    """Subscribes to the event bus, appends every Event, checkpoints and uploads."""

    name = "accesslog"

    def __init__(self, gw: Gateway, *, checkpoint_interval: float = 60.0,
                 upload_interval: float = 3600.0, **store_opts: Any) -> None:
        super().__init__(gw)
        self.store = AccessLogStore(Path(gw.state_dir), boot=getattr(gw, "boot_id", ""),
                                    on_checkpoint=self._on_checkpoint, **store_opts)
        self.checkpoint_interval = checkpoint_interval
        self.upload_interval = upload_interval
        self._uploader: Uploader | None = None
        self._heads: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._subscribed = False
        self._outbox = self.store.dir / "outbox" / "state.json"
        self._sent: dict[str, Any] = {"segments": {}, "head_epoch": -1}
        self.errors = 0
        self.store.retain = self._retain
        self.writer = LogWriter(self.store, on_failed=self._write_failed,
                                on_resumed=self._write_resumed)
        self._upload_lock = threading.RLock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and subscribe to the bus (start() does this; usable without asyncio)."""
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._sent = json.loads(self._outbox.read_text())
        self.store.open()
        if not self._subscribed:
            self.gw.bus.subscribe(self._on_event)
            self._subscribed = True

    async def start(self) -> None:
        """Open the log, start the writer thread and the checkpoint/upload timer."""
        self._loop = asyncio.get_running_loop()
        self.open()
        self.writer.start()
        self._task = self.gw.spawn("accesslog.checkpoints", self._timer)

    async def stop(self) -> None:
        """Write what is queued, seal, try a last upload, close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.writer.stop)
        self._loop = None
        try:
            self.store.close()
        except AppendFailed as exc:  # a full disk at shutdown: the next start seals the tail
            log.error("cannot seal the access log at shutdown: %s", exc.message)
        self.flush_uploads()

    async def _timer(self) -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            elapsed += self.checkpoint_interval
            self.writer.request_checkpoint()
            if elapsed >= self.upload_interval:
                elapsed = 0.0
                await asyncio.to_thread(self.request_upload)

    # -- recording -------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self.writer.submit(event.to_dict())

    def append(self, record: dict[str, Any]) -> None:
        """Record one operation (fields as in Event.to_dict(); extra keys go to params).

        Queued when the disk refuses it (written when space returns); never raises for that.
        """
        self.writer.submit(record)

    def _emit(self, event: Event) -> None:
        # Called from the writer thread: events are published on the gateway's loop.
        loop = self._loop
        if loop is not None and loop.is_running() and not _on_loop(loop):
            loop.call_soon_threadsafe(self.gw.emit, event)
        else:
            self.gw.emit(event)

    def _write_failed(self, exc: AppendFailed) -> None:
        self.errors += 1
        log.error("access log append failed: %s", exc.message)
        # Published on the bus: the uplink takes it at once; the log takes it when it can.
        self._emit(Event("accesslog.write_failed", "alert", "gateway", action="append",
                         result="failed", reason=exc.message,
                         params={"errno": exc.errno_name, "backlog": self.writer.backlog}))

    def _write_resumed(self, info: dict[str, Any]) -> None:
        self._emit(Event("accesslog.write_resumed", "notice", "gateway", action="append",
                         result="ok", reason="the access log is written again",
                         params=dict(info)))

    def _retain(self, name: str) -> bool:
        """Keep a segment with alert-level records until the platform has all of it."""
        try:
            n = int(name[4:12])
            size = (self.store.dir / name).stat().st_size
        except (ValueError, OSError):
            return False
        return n in self.store.urgent_segments and self._sent["segments"].get(name, 0) < size

    # -- uploads ---------------------------------------------------------------------------
    def set_uploader(self, fn: Uploader | None) -> None:
        """Install the WAN uploader and deliver whatever is pending."""
        self._uploader = fn
        self.flush_uploads()

    def _on_checkpoint(self, cp: dict[str, Any]) -> None:
        with self._upload_lock:
            self._heads.append(cp)
        closed_urgent = cp.get("rotate") is True and cp.get("seg") in self.store.urgent_segments
        # A closed segment with alert-level records goes up at once (it may not be pruned).
        self.flush_uploads(heads_only=not closed_urgent, segments=closed_urgent)

    def request_upload(self) -> int:
        """Upload closed segments and the sealed part of the current one; items delivered."""
        return self.flush_uploads(segments=True)

    def pending_uploads(self) -> list[dict[str, Any]]:
        """What still waits for the platform (descriptions only: no data, no secrets)."""
        out: list[dict[str, Any]] = []
        if self.store.keys.bundle_path.exists():
            out.append({"type": "keys", "log_id": self.store.log_id})
        out += [{"type": "head", "epoch": h["epoch"], "seq": h["seq"]} for h in self._heads]
        for name, size, complete in self._segment_snapshots():
            out.append({"type": "segment", "name": name, "bytes": size, "complete": complete})
        return out

    def _segment_snapshots(self) -> list[tuple[str, int, bool]]:
        out = []
        segs = list_segments(self.store.dir)
        for n, p in segs:
            current = n == self.store.segment
            size = self.store.sealed_size if current else p.stat().st_size
            if size and self._sent["segments"].get(p.name, 0) < size:
                out.append((p.name, size, not current))
        return out

    def flush_uploads(self, heads_only: bool = False, segments: bool = False) -> int:
        """Hand pending items to the uploader in order; stop at the first refusal."""
        with self._upload_lock:
            return self._flush_uploads(heads_only, segments)

    def _flush_uploads(self, heads_only: bool, segments: bool) -> int:
        fn = self._uploader
        if fn is None:
            return 0
        sent = 0
        try:
            if self.store.keys.bundle_path.exists():
                bundle = load_bundle(self.store.state_dir, self.store.dir)
                if not fn({"type": "keys", "log_id": self.store.log_id, "bundle": bundle}):
                    return sent
                shred(self.store.keys.bundle_path)  # key_0 must not stay on the gateway
                sent += 1
            while self._heads:
                if not fn({"type": "head", "log_id": self.store.log_id,
                           "checkpoint": self._heads[0]}):
                    return sent
                self._sent["head_epoch"] = self._heads.pop(0)["epoch"]
                sent += 1
            if segments and not heads_only:
                for name, size, complete in self._segment_snapshots():
                    with (self.store.dir / name).open("rb") as f:
                        data = f.read(size)
                    if not fn({"type": "segment", "log_id": self.store.log_id, "name": name,
                               "data": data, "complete": complete}):
                        return sent
                    self._sent["segments"][name] = size
                    sent += 1
        except Exception:
            self.errors += 1
            log.exception("access-log upload failed; will retry")
        finally:
            if sent:
                atomic_write(self._outbox, json.dumps(self._sent).encode())
        return sent

    def status(self) -> dict[str, Any]:
        """Store summary plus upload backlog."""
        st = self.store.status()
        st["pending_uploads"] = len(self.pending_uploads())
        st["errors"] = self.errors
        st["writer"] = self.writer.status()
        return st


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
