"""Overlap the update data path's steps on two cores: hashing and writing on a helper thread
while the next block arrives, and fdatasync on another while writing goes on (both release the
GIL). Order and durability are unchanged: a mark is reported only after its bytes are synced.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from typing import Any

from firmware.core.errors import IntegrityError


class Syncer:
    """fdatasync `fd` in the background; then(mark) runs after the sync that covered mark."""

    def __init__(self, fd: int, then: Callable[[int], None], mark: int = 0) -> None:
        self.fd = fd
        self.then = then
        self.synced = mark
        self._pool = ThreadPoolExecutor(1, "mamori-sync")
        self._fut: Future[None] | None = None

    def _sync(self, mark: int) -> None:
        os.fdatasync(self.fd)
        self.then(mark)
        self.synced = mark

    def busy(self) -> bool:
        """True while a background sync is running."""
        return self._fut is not None and not self._fut.done()

    def kick(self, mark: int) -> None:
        """Start syncing everything written so far (bytes up to mark) unless a sync is running."""
        if self.busy():
            return
        if self._fut is not None:
            self._fut.result()  # a failed earlier sync fails the transfer now
        self._fut = self._pool.submit(self._sync, mark)

    def finish(self, mark: int) -> None:
        """Wait for the background sync, then sync up to mark in the caller's thread."""
        try:
            if self._fut is not None:
                self._fut.result()
            if mark > self.synced:
                self._sync(mark)
        finally:
            self._pool.shutdown()

    def abandon(self) -> None:
        """Stop after an error: wait for a running sync, ignore its outcome."""
        if self._fut is not None:
            with suppress(Exception):  # the caller raises the error that stopped it
                self._fut.result()
        self._pool.shutdown()


class Worker:
    """One helper thread running a job per block, one block behind the reader."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, "mamori-ota")
        self._fut: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Wait for (and re-raise from) the previous job, then start fn(*args)."""
        self.wait()
        self._fut = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the running job; its exception is raised here."""
        fut, self._fut = self._fut, None
        if fut is not None:
            fut.result()

    def close(self) -> None:
        """Stop the thread (waits for a running job, ignoring its outcome)."""
        with suppress(Exception):  # only called on the error path or after wait()
            self.wait()
        self._pool.shutdown()


def write_all(fd: int, data: memoryview) -> None:
    """os.write until every byte is written."""
    while data:
        data = data[os.write(fd, data):]


def copy_hashed(src: int, offset: int, size: int, dst: int, block: int, sync_every: int) -> str:
    """Copy size bytes at offset of src to dst, hashing them on the helper thread meanwhile
    (SHA-256 hex); dst is synced before returning. Memory: two blocks."""
    h = hashlib.sha256()
    if size <= block:  # small files (most of a tree): no helper thread
        view = memoryview(bytearray(size))
        if os.preadv(src, [view], offset) != size:
            raise IntegrityError("bundle ends inside a member", "the bundle is truncated")
        h.update(view)
        write_all(dst, view)
        os.fsync(dst)
        return h.hexdigest()
    bufs = (memoryview(bytearray(block)), memoryview(bytearray(block)))
    worker = Worker()
    syncer = Syncer(dst, lambda mark: None)
    pos = 0
    try:
        while pos < size:
            view = bufs[(pos // block) % 2][:min(block, size - pos)]
            if os.preadv(src, [view], offset + pos) != len(view):
                raise IntegrityError("bundle ends inside a member", "the bundle is truncated")
            worker.submit(h.update, view)
            write_all(dst, view)
            pos += len(view)
            if pos - syncer.synced >= sync_every:
                syncer.kick(pos)
        worker.wait()
        syncer.finish(pos)
    except BaseException:
        worker.close()
        syncer.abandon()
        raise
    worker.close()
    os.fsync(dst)
    return h.hexdigest()


def hash_fd(fd: int, block: int) -> str:
    """SHA-256 hex of the rest of fd, reading the next block while the last one is hashed."""
    h = hashlib.sha256()
    bufs = (memoryview(bytearray(block)), memoryview(bytearray(block)))
    worker = Worker()
    k = 0
    try:
        while n := os.readv(fd, [bufs[k % 2]]):
            worker.submit(h.update, bufs[k % 2][:n])
            k += 1
        worker.wait()
    finally:
        worker.close()
    return h.hexdigest()
