"""Append-only, encrypted, chained and sealed segment store (CPython).

Layout of ``STATE_DIR/accesslog/``: ``seg-NNNNNNNN.log`` segments (see
firmware.core.accesslog.framing), ``log.json`` (log id and signing public key), ``keys/``
(KEK-wrapped keys), ``outbox/`` (upload bookkeeping) and ``.lock``.

Crash safety: every frame is appended with one write(); with the default sync policy
("always") it is fdatasync'ed before append() returns, so a crash loses at most the record being
written. On open, an unfinished frame at the end is cut off, a checkpoint that was written
before its key evolved is detected, and the recovered tail is sealed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from firmware.common.accesslog.files import LOG_DIR, list_segments, seg_name
from firmware.common.fsutil import atomic_write
from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, make_record
from firmware.core.accesslog.writer import NONCE_LEN, ChainWriter, record_aad, resume
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.accesslog.keys import LogKeys, fsync_dir

SYNC_POLICIES = ("always", "checkpoint", "none")
URGENT = ("warning", "alert", "critical")


def boot_id() -> str:
    """The kernel's boot ID (Linux), else a random one for this process."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return uuid.uuid4().hex


class AccessLogStore:
    """The gateway's access log: open(), append(), checkpoint(), close()."""

    def __init__(self, state_dir: Path, *, segment_bytes: int = 1 << 20,
                 budget_bytes: int = 32 << 20, checkpoint_every: int = 256,
                 sync: str = "always", clock: Callable[[], float] = time.time,
                 mono: Callable[[], float] = time.monotonic, boot: str = "",
                 on_checkpoint: Callable[[dict[str, Any]], None] | None = None) -> None:
        if sync not in SYNC_POLICIES:
            raise ConfigError("unknown sync policy %r" % sync, field="accesslog.sync",
                              hint="use one of " + ", ".join(SYNC_POLICIES))
        if segment_bytes < 4096 or budget_bytes < 2 * segment_bytes:
            raise ConfigError("segment size must be >= 4096 and the budget >= 2 segments",
                              field="accesslog.budget_bytes")
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / LOG_DIR
        self.segment_bytes = segment_bytes
        self.budget_bytes = budget_bytes
        self.checkpoint_every = max(1, checkpoint_every)
        self.sync = sync
        self.clock = clock
        self.mono = mono
        self.boot = boot or boot_id()
        self.on_checkpoint = on_checkpoint
        self.keys = LogKeys(self.state_dir, self.dir)
        self.writer: ChainWriter | None = None
        self.segment = 0
        self._fd: int | None = None
        self._size = 0
        self._lock_fd: int | None = None
        self._aead: AESGCM | None = None
        self._mutex = threading.RLock()
        self.last_checkpoint: dict[str, Any] | None = None
        self.sealed_size = 0  # bytes of the current segment up to its last checkpoint
        self.recovery: list[str] = []
        self._base_cache: dict[str, Any] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def log_id(self) -> str:
        """This log's identifier."""
        return str(self.keys.info.get("log_id", ""))

    def open(self) -> None:
        """Open (creating on first use) and recover the log."""
        with self._mutex:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._lock()
            segs = list_segments(self.dir)
            if not segs:
                self._create()
            else:
                self.keys.load()
                self._aead = AESGCM(self.keys.data_key)
                self._recover(segs)
            self._aead = AESGCM(self.keys.data_key)

    def _lock(self) -> None:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateError("the access log in %s is open in another process" % self.dir,
                             "stop the other gateway first")
        self._lock_fd = fd

    def _create(self) -> None:
        log_id = uuid.uuid4().hex
        now = self.clock()
        self.keys.create(log_id, now)
        assert self.keys.seal is not None
        self.writer = ChainWriter(log_id, self.keys.seal, chain.genesis(log_id), 1)
        data = self.writer.header(0)
        frame, cp = self.writer.checkpoint(self._cp_fields(0, pub=self.keys.info["pub"]),
                                           self.keys.sign)
        self._new_segment_file(0, data + frame)
        self.keys.save_seal()
        self.last_checkpoint = cp
        self.sealed_size = self._size
        self._notify(cp)

    def _new_segment_file(self, n: int, data: bytes) -> None:
        """Create segment n atomically with its first frames and make it current."""
        path = self.dir / seg_name(n)
        atomic_write(path, data, sync_dir=True)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self.segment = n
        self._size = len(data)

    def _recover(self, segs: list[tuple[int, Path]]) -> None:
        with contextlib.suppress(FileNotFoundError):
            for p in self.dir.glob("seg-*.log.tmp"):
                p.unlink()
        n, path = segs[-1]
        data = path.read_bytes()
        frames, end, trouble = framing.scan(data)
        st = resume(frames)
        if st["header"]["log"] != self.log_id:
            raise IntegrityError("segment %s belongs to another log" % path.name)
        seal = self.keys.seal
        assert seal is not None
        if seal.epoch == st["last_epoch"]:
            seal.evolve()  # the checkpoint was written, the key had not evolved yet
            self.recovery.append("seal key evolved past epoch %d" % st["last_epoch"])
        elif seal.epoch < st["last_epoch"]:
            raise IntegrityError("the log holds epoch %d but the seal key is at epoch %d"
                                 % (st["last_epoch"], seal.epoch),
                                 "the key file was rolled back; keep the log as evidence")
        elif seal.epoch > st["last_epoch"] + 1:
            self.recovery.append("epochs %d..%d are missing from the log"
                                 % (st["last_epoch"] + 1, seal.epoch - 1))
        self.writer = ChainWriter(self.log_id, seal, st["h"], st["next_seq"])
        self.writer.unsealed = st["unsealed"]
        self.segment = n
        if trouble is not None and trouble[0] == "torn":
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, end)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.recovery.append("dropped %d bytes of an unfinished write in %s"
                                 % (len(data) - end, path.name))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = end
        self.sealed_size = end if st["unsealed"] == 0 else 0
        if st["last_cp"].get("final") is True:
            self.recovery.append("the log was sealed for a reset that did not go ahead; it "
                                 "continues")
        declared = st["last_cp"].get("base", {}).get("seg", 0)
        stale = [p for m, p in segs if m < declared]
        if stale:  # a crash interrupted pruning after its checkpoint: finish it
            for p in stale:
                p.unlink()
            fsync_dir(self.dir)
            self.recovery.append("finished pruning %d segment(s)" % len(stale))
        if st["last_cp"].get("rotate") is True and st["unsealed"] == 0 and trouble is None:
            self.recovery.append("created segment %d that a crash prevented" % (n + 1))
            self._new_segment_file(n + 1, self.writer.header(n + 1))
        self.keys.save_seal()  # only now: a crash before this repeats the repair above
        if trouble is not None and trouble[0] == "corrupt":
            # Keep the damaged file as evidence and continue in a fresh segment.
            self.recovery.append("%s is damaged (%s); continuing in a new segment"
                                 % (path.name, trouble[1]))
            self._new_segment_file(n + 1, self.writer.header(n + 1))
        if self.recovery or self.writer.unsealed:
            if self.recovery:
                self._append_locked({"kind": "accesslog.recovered", "severity": "warning",
                                     "source": "gateway", "action": "recover",
                                     "result": "ok", "params": {"steps": self.recovery}})
            self._checkpoint_locked("recovery")

    def close(self) -> None:
        """Seal what is unsealed and release the files."""
        with self._mutex:
            if self.writer is not None and self._fd is not None and self.writer.unsealed:
                self._checkpoint_locked("close")
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            if self.keys.seal is not None:
                self.keys.seal.wipe()
            self.writer = None

    # -- writing ---------------------------------------------------------------------------
    def append(self, fields: dict[str, Any]) -> int:
        """Append one record (minimised, encrypted, chained); returns its sequence number."""
        with self._mutex:
            if self.writer is None:
                raise StateError("the access log is not open")
            seq = self._append_locked(fields)
            if self.writer.unsealed >= self.checkpoint_every or \
                    str(fields.get("severity", "")) in URGENT:
                self._checkpoint_locked("count" if self.writer.unsealed >= self.checkpoint_every
                                        else "urgent")
            return seq

    def _append_locked(self, fields: dict[str, Any]) -> int:
        assert self.writer is not None and self._aead is not None
        seq = self.writer.next_seq
        rec = make_record(fields, seq, self.clock(), self.mono(), self.boot)
        nonce = secrets.token_bytes(NONCE_LEN)
        ct = self._aead.encrypt(nonce, canonical(rec), record_aad(self.log_id, seq))
        self._write(self.writer.record(nonce, ct), self.sync == "always")
        return seq

    def _write(self, frame: bytes, sync: bool) -> None:
        assert self._fd is not None
        os.write(self._fd, frame)
        self._size += len(frame)
        if sync:
            os.fdatasync(self._fd)

    def _cp_fields(self, oldest: int, **extra: Any) -> dict[str, Any]:
        fields = {"ts": self.clock(), "mono": self.mono(), "boot": self.boot,
                  "base": self._base(oldest)}
        fields.update(extra)
        return fields

    def _base(self, oldest: int) -> dict[str, Any]:
        """The retention base: where the oldest kept segment starts the chain."""
        if self._base_cache is not None and self._base_cache["seg"] == oldest:
            return self._base_cache
        path = self.dir / seg_name(oldest)
        if not path.exists():
            return {"seg": 0, "seq": 1, "prev": chain.hexs(chain.genesis(self.log_id))}
        with path.open("rb") as f:
            head = f.read(5)
            body = f.read(int.from_bytes(head[1:5], "big"))
        hdr = framing.parse_header(body)
        self._base_cache = {"seg": oldest, "seq": hdr["seq"], "prev": hdr["prev"]}
        return self._base_cache

    def checkpoint(self, reason: str = "request") -> dict[str, Any] | None:
        """Seal everything written so far (no-op when nothing is unsealed)."""
        with self._mutex:
            if self.writer is None or not self.writer.unsealed:
                return None
            return self._checkpoint_locked(reason)

    def finalize(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The log's last words before a reset: one record, sealed in a checkpoint marked
        ``final`` (signed, so the platform can tell that the log ended there)."""
        with self._mutex:
            if self.writer is None:
                raise StateError("the access log is not open")
            self._append_locked(fields)
            return self._checkpoint_locked("reset", final=True)

    def _checkpoint_locked(self, reason: str, oldest: int | None = None,
                           **extra: Any) -> dict[str, Any]:
        assert self.writer is not None
        if oldest is None:
            segs = list_segments(self.dir)
            oldest = segs[0][0] if segs else self.segment
        # A checkpoint that closes a segment says so: removing the next one is then visible.
        rotate = self._size >= self.segment_bytes
        frame, cp = self.writer.checkpoint(
            self._cp_fields(oldest, reason=reason, seg=self.segment, rotate=rotate, **extra),
            self.keys.sign)
        self._write(frame, self.sync != "none")
        self.last_checkpoint = cp
        self.sealed_size = self._size
        if rotate:
            # Next segment before the key file: a crash in between leaves the key one epoch
            # behind, which tells the verifier (and recovery) the segment was never created.
            self._new_segment_file(self.segment + 1, self.writer.header(self.segment + 1))
            self.sealed_size = self._size
        self.keys.save_seal()
        self._notify(cp)
        if rotate:
            self._prune()
        return cp

    def _prune(self) -> None:
        """Drop the oldest closed segments while over the disk budget."""
        segs = list_segments(self.dir)
        total = sum(p.stat().st_size for _n, p in segs)
        drop = []
        for _n, p in segs[:-1]:
            if total <= self.budget_bytes:
                break
            drop.append(p)
            total -= p.stat().st_size
        if not drop:
            return
        keep = segs[len(drop)][0]
        # Declare the new retention base in a sealed checkpoint before deleting anything.
        self._append_locked({"kind": "accesslog.pruned", "severity": "notice",
                             "source": "gateway", "action": "prune", "result": "ok",
                             "params": {"segments": [p.name for p in drop]}})
        self._checkpoint_locked("prune", oldest=keep)
        for p in drop:
            p.unlink()
        fsync_dir(self.dir)

    def _notify(self, cp: dict[str, Any]) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(cp)

    # -- other -----------------------------------------------------------------------------
    def crypto_erase(self) -> None:
        """Resale reset: destroy the keys, then delete the segments."""
        with self._mutex:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self.writer = None
            self.keys.erase()
            for _n, p in list_segments(self.dir):
                p.unlink()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def status(self) -> dict[str, Any]:
        """Summary for the status view."""
        segs = list_segments(self.dir)
        w = self.writer
        return {
            "log_id": self.log_id,
            "last_seq": w.last_seq if w else None,
            "epoch": w.seal_key.epoch if w else None,
            "unsealed": w.unsealed if w else None,
            "segments": len(segs),
            "bytes": sum(p.stat().st_size for _n, p in segs),
            "budget_bytes": self.budget_bytes,
            "sync": self.sync,
        }
