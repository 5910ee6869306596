"""The access log's appender: batches records off the event loop and survives full disks (CPython).

Records are queued by ``submit`` (any thread) and written by ``drain`` in batches (one write and
one fdatasync per batch instead of one per record). In a running gateway ``start`` runs ``drain``
in its own thread, so no disk write ever blocks the event loop; without it (scratch gateways,
tools) ``submit`` writes at once.

When the store refuses an append (``AppendFailed``: ENOSPC, EIO, short write) the log is left as
it was and the records stay queued: ``on_failed`` is told once per outage (the gateway raises an
``accesslog.write_failed`` alert, which reaches the uplink without going through the log), the
writer retries every ``retry`` seconds, and on the first success ``on_resumed`` is told how long
it lasted and how many records had to be dropped. The queue is bounded: past ``max_backlog``
records the oldest info-level ones go first; alert-level records are dropped only past
``4 * max_backlog``. Every drop is counted.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from firmware.gateway.accesslog.store import URGENT, AccessLogStore, AppendFailed

log = logging.getLogger("mamori.accesslog")

BATCH = 256


def is_urgent(record: dict[str, Any]) -> bool:
    """Alert-level records (warning and worse) are the last to be dropped."""
    return str(record.get("severity", "")) in URGENT


class LogWriter:
    """Queue + batch appender in front of an AccessLogStore (see module docstring)."""

    def __init__(self, store: AccessLogStore, *,
                 on_failed: Callable[[AppendFailed], None] | None = None,
                 on_resumed: Callable[[dict[str, Any]], None] | None = None,
                 max_backlog: int = 10_000, retry: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.on_failed = on_failed
        self.on_resumed = on_resumed
        self.max_backlog = max_backlog
        self.retry = retry
        self.clock = clock
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._checkpoint_due = False
        self.failing_since: float | None = None
        self.last_error = ""
        self.written = 0
        self.dropped = 0
        self._dropped_in_outage = 0
        self.failures = 0

    # -- producer side -----------------------------------------------------------------------
    def submit(self, record: dict[str, Any]) -> None:
        """Queue one record; written at once when no writer thread runs."""
        with self._cond:
            self._queue.append(record)
            self._bound()
            self._cond.notify()
        if self._thread is None:
            self.drain(block=False)

    def request_checkpoint(self) -> None:
        """Seal what is written, from the writer's thread (or at once without one)."""
        with self._cond:
            self._checkpoint_due = True
            self._cond.notify()
        if self._thread is None:
            self.drain(block=False)

    def _bound(self) -> None:
        q = self._queue
        if len(q) <= self.max_backlog:
            return
        # The oldest info-level record goes first; alert-level ones only past the hard cap.
        for i, rec in enumerate(q):
            if not is_urgent(rec):
                del q[i]
                self._count_drop()
                return
        if len(q) > 4 * self.max_backlog:
            q.popleft()
            self._count_drop()

    def _count_drop(self) -> None:
        self.dropped += 1
        self._dropped_in_outage += 1

    # -- writer side ------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Records queued and not yet written."""
        return len(self._queue)

    def drain(self, block: bool = True) -> int:
        """Write what is queued (and a requested checkpoint); records written. Never raises.

        With ``block`` False it returns at once when another call is writing (which then also
        writes what was queued meanwhile, e.g. the alert its own failure handler raised).
        """
        done = 0
        if not self._write_lock.acquire(blocking=block):
            return 0
        try:
            while True:
                with self._cond:
                    batch = [self._queue[i] for i in range(min(BATCH, len(self._queue)))]
                    checkpoint, self._checkpoint_due = self._checkpoint_due, False
                if not batch and not checkpoint:
                    return done
                try:
                    if batch:
                        self.store.append_many(batch)
                    if checkpoint and not batch:
                        self.store.checkpoint("interval")
                    elif checkpoint:
                        with self._cond:
                            self._checkpoint_due = True
                except AppendFailed as exc:
                    self._take(exc.committed)
                    done += exc.committed
                    if checkpoint:
                        with self._cond:
                            self._checkpoint_due = True
                    self._failed(exc)
                    return done
                except Exception:  # a broken store must not kill the writer: count, retry
                    log.exception("access log append failed")
                    self._failed(AppendFailed("access-log append failed unexpectedly"))
                    return done
                self._take(len(batch))
                done += len(batch)
                self._resumed()
        finally:
            self._write_lock.release()

    def _take(self, n: int) -> None:
        with self._cond:
            for _ in range(min(n, len(self._queue))):
                self._queue.popleft()
        self.written += n

    def _failed(self, exc: AppendFailed) -> None:
        self.failures += 1
        self.last_error = exc.message
        if self.failing_since is not None:
            return
        self.failing_since = self.clock()
        self._dropped_in_outage = 0
        if self.on_failed is not None:
            try:
                self.on_failed(exc)
            except Exception:
                log.exception("access-log failure handler failed")

    def _resumed(self) -> None:
        if self.failing_since is None:
            return
        info = {"failed_for_s": round(self.clock() - self.failing_since, 3),
                "dropped": self._dropped_in_outage, "error": self.last_error}
        self.failing_since = None
        self.last_error = ""
        if self.on_resumed is not None:
            try:
                self.on_resumed(info)
            except Exception:
                log.exception("access-log resume handler failed")

    # -- thread -----------------------------------------------------------------------------
    def start(self) -> None:
        """Write from a background thread from now on."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="accesslog-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued (if the disk lets us) and end the thread."""
        t = self._thread
        if t is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify()
        t.join(timeout)
        self._thread = None
        self.drain()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._checkpoint_due and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            self.drain()
            if self.failing_since is not None:
                end = time.monotonic() + self.retry
                with self._cond:  # wait for space to come back (or for stop)
                    while not self._stopping and time.monotonic() < end:
                        self._cond.wait(max(0.0, end - time.monotonic()))

    def status(self) -> dict[str, Any]:
        """Queue depth, totals and the current outage, if any."""
        return {"backlog": self.backlog, "written": self.written, "dropped": self.dropped,
                "failures": self.failures, "failing": self.failing_since is not None,
                "last_error": self.last_error}
