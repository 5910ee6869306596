"""Append-only, encrypted, chained and sealed segment store (CPython).

Layout of ``STATE_DIR/accesslog/``: ``seg-NNNNNNNN.log`` segments (see
firmware.core.accesslog.framing), ``log.json`` (log id and signing public key), ``keys/``
(KEK-wrapped keys), ``outbox/`` (upload bookkeeping) and ``.lock``.

Crash safety: the frames of one append (or batch) go out with one write(); with the default
sync policy ("always") they are fdatasync'ed before append() returns, so a crash loses at most the
records being written. On open, an unfinished frame at the end is cut off, a checkpoint that was
written before its key evolved is detected, and the recovered tail is sealed.

Failed writes (ENOSPC, EIO, short writes) leave the log exactly as it was: every append is a
transaction over the chain state (chain value, sequence, seal key, segment, size); on an OSError
the bytes written are cut back, a segment created by it is removed, the state is restored and
``AppendFailed`` is raised. Nothing of a failed append is acknowledged or announced (checkpoint
heads are handed out only after the commit), and the next append simply tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from firmware.common.accesslog.files import LOG_DIR, list_segments, seg_name
from firmware.common.fsutil import atomic_write, write_all
from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, make_record
from firmware.core.accesslog.writer import NONCE_LEN, ChainWriter, record_aad, resume
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.accesslog.keys import LogKeys, fsync_dir

SYNC_POLICIES = ("always", "checkpoint", "none")
URGENT_FILE = "urgent.json"  # segments with alert-level records: kept until uploaded
URGENT = ("warning", "alert", "critical")


def boot_id() -> str:
    """The kernel's boot ID (Linux), else a random one for this process."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return uuid.uuid4().hex


class AppendFailed(StateError):
    """An append could not be written; the log is left exactly as it was before it."""

    code = "accesslog-write-failed"

    def __init__(self, message: str, hint: str = "", committed: int = 0,
                 errno_name: str = "") -> None:
        super().__init__(message, hint)
        self.committed = committed  # records of the batch written before the failure
        self.errno_name = errno_name


@dataclass
class _Snapshot:
    """Everything an append may change, to put back when its write fails."""

    h: bytes
    next_seq: int
    unsealed: int
    epoch: int
    key: bytearray
    size: int
    segment: int
    sealed_size: int
    last_checkpoint: dict[str, Any] | None

    def wipe(self) -> None:
        """Erase the copy of the seal key."""
        self.key[:] = bytes(len(self.key))


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
        self._pending: list[bytes] = []  # frames of the open transaction, not yet written
        self._announce: list[dict[str, Any]] = []  # checkpoints to hand out after the commit
        self._prune_due = False
        self._cut_to: int | None = None  # a roll-back whose cut-back has not succeeded yet
        self._recovery_due = False
        self.write_failures = 0
        # retain(segment_name) -> True while a segment may not be pruned (set by the service)
        self.retain: Callable[[str], bool] | None = None
        self.urgent_segments: set[int] = set()  # segments holding alert-level records
        self._txn_urgent: set[int] = set()

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
            self.urgent_segments = self._load_urgent()
            segs = list_segments(self.dir)
            if not segs:
                self._create()
            else:
                self.keys.load()
                self._aead = AESGCM(self.keys.data_key)
                self._recover(segs)
            self._aead = AESGCM(self.keys.data_key)
        self._after_commit()

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
            self._recovery_due = True
            try:
                self._commit([])
            except AppendFailed:
                pass  # a full disk at start: sealed by the first append that gets through

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
        """Append one record (minimised, encrypted, chained); returns its sequence number.

        AppendFailed when it cannot be written: the log is then exactly as it was before.
        """
        return self.append_many([fields])[0]

    def append_many(self, batch: Iterable[dict[str, Any]]) -> list[int]:
        """Append records with one write and one sync per checkpoint span; their sequence numbers.

        Records up to each checkpoint are committed together; on a failure the uncommitted ones
        are rolled back and AppendFailed says how many of the batch were committed before.
        """
        with self._mutex:
            if self.writer is None:
                raise StateError("the access log is not open")
            seqs = self._commit(list(batch))
        self._after_commit()
        return seqs

    def _commit(self, batch: list[dict[str, Any]]) -> list[int]:
        assert self.writer is not None
        seqs: list[int] = []
        snap = self._snapshot()
        try:
            self._repair()
            if self._recovery_due:
                if self.recovery:
                    self._append_locked({"kind": "accesslog.recovered", "severity": "warning",
                                         "source": "gateway", "action": "recover",
                                         "result": "ok", "params": {"steps": self.recovery}})
                self._checkpoint_locked("recovery")
                snap.wipe()
                snap = self._snapshot()
                self._recovery_due = False
            for fields in batch:
                seq = self._append_locked(fields)
                due = self.writer.unsealed >= self.checkpoint_every
                if due or str(fields.get("severity", "")) in URGENT:
                    self._checkpoint_locked("count" if due else "urgent")
                    seqs.append(seq)
                    snap.wipe()
                    snap = self._snapshot()  # committed: a later failure keeps these
                else:
                    seqs.append(seq)
            self._flush(self.sync == "always")
        except OSError as exc:
            self._rollback(snap)
            self.write_failures += 1
            raise AppendFailed(
                "access-log append failed: %s (the log is unchanged)" % (
                    exc.strerror or exc.__class__.__name__),
                "free space on the log's filesystem; appends resume by themselves",
                committed=self._committed_of(seqs, snap), errno_name=_errno_name(exc)) from None
        finally:
            snap.wipe()
        return seqs

    def _committed_of(self, seqs: list[int], snap: _Snapshot) -> int:
        """How many of a batch's records lie before the restored (committed) state."""
        return sum(1 for q in seqs if q < snap.next_seq)

    def _snapshot(self) -> _Snapshot:
        w = self.writer
        assert w is not None
        return _Snapshot(w.h, w.next_seq, w.unsealed, w.seal_key.epoch,
                         bytearray(w.seal_key.key), self._size, self.segment, self.sealed_size,
                         self.last_checkpoint)

    def _rollback(self, snap: _Snapshot) -> None:
        """Put the log back as it was at `snap`: memory first, then cut the file back."""
        w = self.writer
        assert w is not None
        self._pending.clear()
        self._announce.clear()
        self._txn_urgent.clear()
        self._prune_due = False
        if self.segment != snap.segment:
            # A rotation of this transaction made a new segment: it goes again.
            if self._fd is not None:
                os.close(self._fd)
            for n in range(snap.segment + 1, self.segment + 1):
                with contextlib.suppress(OSError):
                    (self.dir / seg_name(n)).unlink()
            self._fd = os.open(self.dir / seg_name(snap.segment), os.O_WRONLY | os.O_APPEND)
            self.segment = snap.segment
        w.h, w.next_seq, w.unsealed = snap.h, snap.next_seq, snap.unsealed
        w.seal_key.restore(snap.epoch, snap.key)
        self._size = snap.size
        self.sealed_size = snap.sealed_size
        self.last_checkpoint = snap.last_checkpoint
        self._cut_to = snap.size
        with contextlib.suppress(OSError):
            self._repair()  # else retried before the next write

    def _repair(self) -> None:
        """Cut a torn tail left by a failed write back to the committed size."""
        if self._cut_to is None:
            return
        assert self._fd is not None
        os.ftruncate(self._fd, self._cut_to)
        os.fsync(self._fd)
        self._cut_to = None

    def _after_commit(self) -> None:
        """Announce committed checkpoints; prune (its own transaction) when a segment closed."""
        with self._mutex:
            cps, self._announce = self._announce, []
            prune, self._prune_due = self._prune_due, False
        for cp in cps:
            self._notify(cp)
        if prune:
            with self._mutex:
                try:
                    self._prune()
                except AppendFailed:
                    self._prune_due = True  # tried again after the next commit
            self._after_commit()

    def _append_locked(self, fields: dict[str, Any]) -> int:
        assert self.writer is not None and self._aead is not None
        seq = self.writer.next_seq
        if str(fields.get("severity", "")) in URGENT and self.segment not in self.urgent_segments:
            self._txn_urgent.add(self.segment)
        rec = make_record(fields, seq, self.clock(), self.mono(), self.boot)
        nonce = secrets.token_bytes(NONCE_LEN)
        ct = self._aead.encrypt(nonce, canonical(rec), record_aad(self.log_id, seq))
        self._pending.append(self.writer.record(nonce, ct))
        return seq

    def _flush(self, sync: bool) -> None:
        """Write the transaction's frames with one write (and fdatasync when `sync`)."""
        assert self._fd is not None
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._size += len(data)  # before the write: a roll-back cuts back what got out
            write_all(self._fd, data)
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
        """Seal everything written so far (None when nothing is unsealed); AppendFailed else."""
        with self._mutex:
            if self.writer is None or not self.writer.unsealed:
                return None
            cp = self._transaction("checkpoint", lambda: self._checkpoint_locked(reason))
        self._after_commit()
        return cp

    def finalize(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The log's last words before a reset: one record, sealed in a checkpoint marked
        ``final`` (signed, so the platform can tell that the log ended there)."""

        def last_words() -> dict[str, Any]:
            self._append_locked(fields)
            return self._checkpoint_locked("reset", final=True)

        with self._mutex:
            if self.writer is None:
                raise StateError("the access log is not open")
            cp = self._transaction("final record", last_words)
        self._after_commit()
        return cp

    def _transaction(self, what: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `work` (under the mutex) all or nothing: on a write error the log is rolled
        back to where it was and AppendFailed says so."""
        snap = self._snapshot()
        try:
            self._repair()
            return work()
        except OSError as exc:
            self._rollback(snap)
            self.write_failures += 1
            raise AppendFailed("access-log %s failed: %s (the log is unchanged)"
                               % (what, exc.strerror or exc.__class__.__name__),
                               "free space on the log's filesystem",
                               errno_name=_errno_name(exc)) from None
        finally:
            snap.wipe()

    def _checkpoint_locked(self, reason: str, oldest: int | None = None,
                           **extra: Any) -> dict[str, Any]:
        """Seal the transaction's records and commit it: write, sync, rotate, save the key."""
        assert self.writer is not None
        if oldest is None:
            segs = list_segments(self.dir)
            oldest = segs[0][0] if segs else self.segment
        # A checkpoint that closes a segment says so: removing the next one is then visible.
        size = self._size + sum(len(f) for f in self._pending)
        rotate = size >= self.segment_bytes
        frame, cp = self.writer.checkpoint(
            self._cp_fields(oldest, reason=reason, seg=self.segment, rotate=rotate, **extra),
            self.keys.sign)
        self._pending.append(frame)
        self._flush(self.sync != "none")
        if rotate:
            # Next segment before the key file: a crash in between leaves the key one epoch
            # behind, which tells the verifier (and recovery) the segment was never created.
            self._new_segment_file(self.segment + 1, self.writer.header(self.segment + 1))
        if self._txn_urgent:
            self._save_urgent(self.urgent_segments | self._txn_urgent)
            self._txn_urgent.clear()
        self.keys.save_seal()
        self.last_checkpoint = cp
        self.sealed_size = self._size
        self._announce.append(cp)
        if rotate:
            self._prune_due = True
        return cp

    def _prune(self) -> None:
        """Drop the oldest closed segments while over the disk budget."""
        segs = list_segments(self.dir)
        total = sum(p.stat().st_size for _n, p in segs)
        drop = []
        for _n, p in segs[:-1]:
            if total <= self.budget_bytes:
                break
            if self.retain is not None and self.retain(p.name):
                break  # holds alert-level records the platform does not have yet
            drop.append(p)
            total -= p.stat().st_size
        if not drop:
            return
        keep = segs[len(drop)][0]
        # Declare the new retention base in a sealed checkpoint before deleting anything.
        snap = self._snapshot()
        try:
            self._repair()
            self._append_locked({"kind": "accesslog.pruned", "severity": "notice",
                                 "source": "gateway", "action": "prune", "result": "ok",
                                 "params": {"segments": [p.name for p in drop]}})
            self._checkpoint_locked("prune", oldest=keep)
        except OSError as exc:
            self._rollback(snap)
            self.write_failures += 1
            raise AppendFailed("access-log pruning failed: %s" % exc.strerror,
                               errno_name=_errno_name(exc)) from None
        finally:
            snap.wipe()
        for p in drop:
            p.unlink()
        fsync_dir(self.dir)
        gone = {n for n, p in segs if p in drop} & self.urgent_segments
        if gone:
            with contextlib.suppress(OSError):
                self._save_urgent(self.urgent_segments - gone)

    def _load_urgent(self) -> set[int]:
        try:
            raw = json.loads((self.dir / URGENT_FILE).read_text())
        except (OSError, ValueError):
            return set()
        return {int(n) for n in raw.get("segments", []) if isinstance(n, int)}

    def _save_urgent(self, segs: set[int]) -> None:
        atomic_write(self.dir / URGENT_FILE, json.dumps({"segments": sorted(segs)}).encode())
        self.urgent_segments = set(segs)

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
            "write_failures": self.write_failures,
        }


def _errno_name(exc: OSError) -> str:
    import errno

    return errno.errorcode.get(exc.errno or 0, "") if exc.errno else exc.__class__.__name__
