"""Streaming, resumable bundle download into the staging file: one request, each chunk checked
against its signed hash before it is written, progress recorded only after an fdatasync.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.core.errors import IntegrityError
from firmware.core.update.chunks import chunk_count, chunk_span, verify_chunk
from firmware.gateway.update.fetch import Fetcher
from firmware.gateway.update.overlap import Syncer, Worker, write_all

# Progress is made durable at least this often: a power cut costs at most this much re-download.
SYNC_BYTES = 64 * 1024 * 1024
SYNC_SECONDS = 2.0


def download(fetcher: Fetcher, target: dict[str, Any], staging: Path, done: int,
             progress: Callable[[int], None],
             clock: Callable[[], float] = time.monotonic) -> None:
    """Fetch chunks done..n of target["url"] into staging; progress(k) once chunks < k are
    verified and synced. Memory: two chunk buffers whatever the bundle size."""
    length, size, hashes = target["length"], target["chunk_size"], target["chunks"]
    n = chunk_count(length, size)
    staging.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(staging, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Bytes past the last recorded chunk are from before a power cut: drop them.
        os.ftruncate(fd, done * size)
        os.lseek(fd, done * size, os.SEEK_SET)
        if done < n:
            _stream(fetcher, target["url"], fd, done, n, length, size, hashes, progress, clock)
        if os.fstat(fd).st_size != length:
            raise IntegrityError("downloaded bundle has the wrong length")
    finally:
        os.close(fd)


class _Sink:
    """Verifies and writes chunks on the helper thread; starts a sync every SYNC_BYTES/SECONDS."""

    def __init__(self, fd: int, target: tuple[int, int, list[str]], done: int,
                 progress: Callable[[int], None], clock: Callable[[], float]) -> None:
        self.fd = fd
        self.length, self.size, self.hashes = target
        self.written = done
        self.syncer = Syncer(fd, progress, done)
        self.clock = clock
        self.last = clock()

    def commit(self, index: int, data: memoryview) -> None:
        """Check chunk `index` against its signed hash, then append it to the staging file."""
        verify_chunk(index, data, self.hashes, self.length, self.size)
        write_all(self.fd, data)
        self.written = index + 1
        if ((self.written - self.syncer.synced) * self.size >= SYNC_BYTES
                or self.clock() - self.last >= SYNC_SECONDS) and not self.syncer.busy():
            self.last = self.clock()
            self.syncer.kick(self.written)

    def salvage(self) -> None:
        """After a failure: make the chunks already verified and written count for the resume."""
        self.syncer.abandon()
        if self.written > self.syncer.synced:
            try:
                os.fdatasync(self.fd)
                self.syncer.then(self.written)
            except OSError:
                pass


def _stream(fetcher: Fetcher, url: str, fd: int, done: int, n: int, length: int, size: int,
            hashes: list[str], progress: Callable[[int], None],
            clock: Callable[[], float]) -> None:
    # Two buffers: the network fills one while the helper thread hashes and writes the other.
    bufs = (memoryview(bytearray(size)), memoryview(bytearray(size)))
    sink = _Sink(fd, (length, size, hashes), done, progress, clock)
    worker = Worker()
    try:
        with fetcher.open_range(url, done * size, length) as body:
            for i in range(done, n):
                want = bufs[i % 2][:chunk_span(i, length, size)[1]]
                got = body.fill(want)
                worker.submit(sink.commit, i, want[:got])
            worker.wait()
            body.expect_end()
    except Exception:
        worker.close()
        sink.salvage()
        raise
    worker.close()
    sink.syncer.finish(sink.written)
