"""The access-log service: records every gateway Event and feeds the platform uploader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import list_segments, load_bundle
from firmware.core.events import Event
from firmware.gateway.accesslog.keys import atomic_write, shred
from firmware.gateway.accesslog.store import AccessLogStore
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
        """Open the log and start the checkpoint/upload timer."""
        self.open()
        self._task = self.gw.spawn("accesslog.checkpoints", self._timer)

    async def stop(self) -> None:
        """Seal, try a last upload, close."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.store.close()
        self.flush_uploads()

    async def _timer(self) -> None:
        elapsed = 0.0
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            elapsed += self.checkpoint_interval
            self.store.checkpoint("interval")
            if elapsed >= self.upload_interval:
                elapsed = 0.0
                self.request_upload()

    # -- recording -------------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        self.append(event.to_dict())

    def append(self, record: dict[str, Any]) -> None:
        """Record one operation (fields as in Event.to_dict(); extra keys go to params)."""
        try:
            self.store.append(record)
        except Exception:
            self.errors += 1
            log.exception("access log append failed")
            raise

    # -- uploads ---------------------------------------------------------------------------
    def set_uploader(self, fn: Uploader | None) -> None:
        """Install the WAN uploader and deliver whatever is pending."""
        self._uploader = fn
        self.flush_uploads()

    def _on_checkpoint(self, cp: dict[str, Any]) -> None:
        self._heads.append(cp)
        self.flush_uploads(heads_only=True)

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
        return st
