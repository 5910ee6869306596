"""Store-and-forward queue of up-link messages (CPython, SQLite from the stdlib, WAL mode).

- Persistent: ``put`` returns only after the row is committed with ``synchronous=FULL``, so a
  message the queue accepted survives SIGKILL and power loss.
- Prioritised: ``peek`` returns the lowest priority number first (security events are 0/1,
  telemetry 3/4), FIFO within a priority.
- Bounded by a disk budget: the stored bytes (payload + topic + a per-row overhead) never exceed
  ``budget_bytes``. When full, the oldest message of the least urgent class that is *less* urgent
  than the new one is evicted; if none is, the new message is refused (``QueueFull``) and counted.
  Telemetry can never push out a security event.
- At-least-once: a message stays until ``ack(msg_id)`` (called on the broker's PUBACK).
- The replay cache of command nonces is persisted in the same database (``nonces`` table).
- Sealed at rest: with a ``key`` (the WAN service always gives one) every payload is AES-GCM
  encrypted under it (``owner.atrest``), bound to its message id, so the database, its WAL and
  the blocks they free on flash never hold an event (principals, reasons) in clear;
  ``secure_delete`` zeroes acknowledged rows; ``rekey()`` re-seals the backlog under a new key.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from firmware.core.errors import IntegrityError, ProtocolError, StateError
from firmware.gateway.identity.atrest import FieldCipher, StoreKey

ROW_OVERHEAD = 64
DEFAULT_BUDGET = 8 * 1024 * 1024
DEFAULT_MAX_MESSAGE = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  msg_id TEXT UNIQUE NOT NULL,
  prio INTEGER NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  created REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (prio, seq);
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class QueueFull(StateError):
    """The queue's disk budget is used by messages at least as urgent as the new one."""

    code = "queue-full"


class QueuedMessage:
    """One stored up-link message."""

    __slots__ = ("msg_id", "prio", "topic", "payload", "attempts")

    def __init__(self, msg_id: str, prio: int, topic: str, payload: bytes, attempts: int) -> None:
        self.msg_id = msg_id
        self.prio = prio
        self.topic = topic
        self.payload = payload
        self.attempts = attempts

    def __repr__(self) -> str:
        return f"QueuedMessage({self.msg_id}, prio={self.prio}, {self.topic})"


def _cost(topic: str, payload: bytes) -> int:
    return len(payload) + len(topic) + ROW_OVERHEAD


class OutboundQueue:
    """Persistent, bounded, prioritised outbox; thread-safe."""

    def __init__(self, path: Path, budget_bytes: int = DEFAULT_BUDGET,
                 max_message: int = DEFAULT_MAX_MESSAGE, synchronous: str = "FULL",
                 key: StoreKey | None = None) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be FULL or NORMAL")
        self.path = Path(path)
        self.budget_bytes = budget_bytes
        self.max_message = max_message
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=" + synchronous)
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(f"PRAGMA journal_size_limit={4 * 1024 * 1024}")
        self._db.executescript(_SCHEMA)
        self.path.chmod(0o600)
        self.key = key
        self._cipher: FieldCipher | None = None
        self.undecryptable = 0  # messages dropped because their key was lost
        if key is not None:
            row = self._db.execute("SELECT v FROM meta WHERE k = 'kid'").fetchone()
            try:
                self._cipher, kid = key.open(str(row[0]) if row else None)
            except IntegrityError:
                # Sealed under a key this gateway no longer has: unreadable, never sendable.
                # Start afresh rather than refuse to connect at all.
                self.undecryptable = self._db.execute("DELETE FROM outbox").rowcount
                row = None
                self._cipher, kid = key.open(None)
            if row is None:
                with self._lock:
                    self._reseal(None, self._cipher, kid)
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload) + LENGTH(topic)), 0) FROM outbox"
        ).fetchone()
        self._count = int(row[0])
        self._bytes = int(row[1]) + self._count * ROW_OVERHEAD

    # -- sealing --------------------------------------------------------------------------
    def _seal(self, msg_id: str, payload: bytes, c: FieldCipher | None = None) -> bytes:
        c = c or self._cipher
        return payload if c is None else c.seal(payload, "outbox:" + msg_id)

    def _open(self, msg_id: str, stored: bytes, c: FieldCipher | None = None) -> bytes:
        c = c or self._cipher
        return stored if c is None else c.open(stored, "outbox:" + msg_id)

    def _reseal(self, old: FieldCipher | None, new: FieldCipher, kid: str) -> None:
        """Re-seal every payload (old None: a plaintext outbox from before sealing); the
        caller holds the lock."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute("SELECT msg_id, payload FROM outbox").fetchall()
            for msg_id, stored in rows:
                plain = bytes(stored) if old is None else old.open(bytes(stored),
                                                                  "outbox:" + msg_id)
                self._db.execute("UPDATE outbox SET payload=? WHERE msg_id=?",
                                 (new.seal(plain, "outbox:" + msg_id), msg_id))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('kid', ?)", (kid,))
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        # Nothing of the old sealing stays in the WAL: checkpoint it away and truncate.
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def rekey(self) -> int:
        """Re-seal the backlog under a new key and destroy the old one; messages re-sealed."""
        if self.key is None or self._cipher is None:
            return 0
        with self._lock:
            new, kid = self.key.begin_rotation()
            self._reseal(self._cipher, new, kid)
            self.key.finish_rotation()
            self._cipher = new
            self._db.execute("VACUUM")
            return self._count

    # -- producer side --------------------------------------------------------------------
    def put(self, msg_id: str, topic: str, payload: bytes, prio: int) -> bool:
        """Store a message durably; False if that id is already queued; QueueFull if no room."""
        stored = self.put_many([(msg_id, topic, payload, prio)], strict=True)
        return stored == 1

    def put_many(self, items: list[tuple[str, str, bytes, int]], strict: bool = False) -> int:
        """Store (msg_id, topic, payload, prio) messages in one transaction (one sync).

        Returns how many were stored: a duplicate id is skipped, a message that finds no room
        is refused and counted (``strict``: QueueFull is raised and nothing is stored).
        """
        for _mid, _topic, payload, _prio in items:
            if len(payload) > self.max_message:
                raise ProtocolError(f"message of {len(payload)} bytes exceeds the "
                                    f"{self.max_message}-byte limit")
        stored = refused = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            used, count = self._bytes, self._count
            try:
                for msg_id, topic, payload, prio in items:
                    if self._db.execute("SELECT 1 FROM outbox WHERE msg_id=?",
                                        (msg_id,)).fetchone():
                        continue
                    payload = self._seal(msg_id, payload)  # noqa: PLW2901 - stored sealed
                    cost = _cost(topic, payload)
                    self._db.execute("SAVEPOINT item")  # a refused message evicts nothing
                    freed, evicted = self._make_room(cost, prio)
                    if self._bytes - freed + cost > self.budget_bytes:
                        self._db.execute("ROLLBACK TO item")
                        self._db.execute("RELEASE item")
                        if strict:
                            raise QueueFull(
                                f"up-link queue is full ({self.budget_bytes} bytes budget)",
                                "the platform has been unreachable for long; "
                                "urgent messages are kept, this one was not")
                        refused += 1
                        continue
                    self._db.execute("RELEASE item")
                    self._bytes -= freed
                    self._count -= evicted
                    if evicted:
                        self._db.execute(
                            "INSERT INTO counters VALUES ('evicted', ?) ON CONFLICT(name) "
                            "DO UPDATE SET value = value + excluded.value", (evicted,))
                    self._db.execute(
                        "INSERT INTO outbox (msg_id, prio, topic, payload, created) "
                        "VALUES (?, ?, ?, ?, ?)", (msg_id, prio, topic, payload, time.time()))
                    self._bytes += cost
                    self._count += 1
                    stored += 1
                if refused:
                    self._db.execute("INSERT INTO counters VALUES ('refused', ?) ON CONFLICT"
                                     "(name) DO UPDATE SET value = value + excluded.value",
                                     (refused,))
                self._db.execute("COMMIT")
            except BaseException as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._bytes, self._count = used, count
                if isinstance(exc, QueueFull):
                    self._bump("refused")
                raise
            return stored

    def _make_room(self, cost: int, prio: int) -> tuple[int, int]:
        freed = evicted = 0
        while self._bytes - freed + cost > self.budget_bytes:
            row = self._db.execute(
                "SELECT seq, LENGTH(payload) + LENGTH(topic) FROM outbox WHERE prio > ? "
                "ORDER BY prio DESC, seq ASC LIMIT 1", (prio,)).fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM outbox WHERE seq=?", (row[0],))
            freed += int(row[1]) + ROW_OVERHEAD
            evicted += 1
        return freed, evicted

    # -- consumer side --------------------------------------------------------------------
    def peek(self, limit: int, exclude: set[str] | None = None) -> list[QueuedMessage]:
        """Up to ``limit`` messages in delivery order (priority, then age), skipping ``exclude``."""
        exclude = exclude or set()
        out: list[QueuedMessage] = []
        with self._lock:
            cur = self._db.execute(
                "SELECT msg_id, prio, topic, payload, attempts FROM outbox ORDER BY prio, seq")
            bad = []
            for msg_id, prio, topic, payload, attempts in cur:
                if msg_id in exclude:
                    continue
                try:
                    plain = self._open(msg_id, bytes(payload))
                except IntegrityError:
                    bad.append(msg_id)  # sealed under a lost key: it can never be sent
                    continue
                out.append(QueuedMessage(msg_id, prio, topic, plain, attempts))
                if len(out) >= limit:
                    break
            cur.close()
        if bad:
            self.undecryptable += len(bad)
            self.ack_many(bad)
        return out

    def pending(self, msg_ids: list[str]) -> set[str]:
        """Which of these messages are still queued (not yet acknowledged)."""
        with self._lock:
            return {str(r[0]) for r in self._db.execute(
                "SELECT msg_id FROM outbox WHERE msg_id IN (%s)"  # noqa: S608 - placeholders
                % ",".join("?" * len(msg_ids)), msg_ids)} if msg_ids else set()

    def mark_attempt(self, msg_id: str) -> None:
        """Count one publish attempt (visible in status; not needed for correctness)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE msg_id=?",
                             (msg_id,))

    def ack(self, msg_id: str) -> bool:
        """Delete a message the broker acknowledged; False if it was not queued."""
        return self.ack_many([msg_id]) == 1

    def ack_many(self, msg_ids: list[str]) -> int:
        """Delete acknowledged messages in one transaction; returns how many were queued.

        A crash before this commits only means those messages are sent again (at-least-once).
        """
        if not msg_ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                freed = done = 0
                for msg_id in msg_ids:
                    row = self._db.execute("SELECT LENGTH(payload) + LENGTH(topic) FROM outbox "
                                           "WHERE msg_id=?", (msg_id,)).fetchone()
                    if row is None:
                        continue
                    self._db.execute("DELETE FROM outbox WHERE msg_id=?", (msg_id,))
                    freed += int(row[0]) + ROW_OVERHEAD
                    done += 1
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._bytes -= freed
            self._count -= done
            return done

    # -- nonces (replay cache persistence) ------------------------------------------------
    def save_nonce(self, nonce: str, expires: float) -> None:
        """Persist a used command nonce until its expiry."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO nonces VALUES (?, ?)", (nonce, expires))

    def load_nonces(self, now: float) -> list[tuple[str, float]]:
        """Nonces still live; expired ones are deleted."""
        with self._lock:
            self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            return [(str(n), float(e)) for n, e in
                    self._db.execute("SELECT nonce, expires FROM nonces")]

    # -- introspection --------------------------------------------------------------------
    def _bump(self, name: str) -> None:
        self._db.execute("INSERT INTO counters VALUES (?, 1) ON CONFLICT(name) "
                         "DO UPDATE SET value = value + 1", (name,))

    def __len__(self) -> int:
        return self._count

    @property
    def used_bytes(self) -> int:
        """Bytes charged against the budget."""
        return self._bytes

    def stats(self) -> dict[str, Any]:
        """Depth, bytes, per-priority counts and eviction/refusal counters."""
        with self._lock:
            by_prio = {str(p): int(n) for p, n in self._db.execute(
                "SELECT prio, COUNT(*) FROM outbox GROUP BY prio")}
            counters = {str(k): int(v) for k, v in
                        self._db.execute("SELECT name, value FROM counters")}
        return {"depth": self._count, "bytes": self._bytes, "budget_bytes": self.budget_bytes,
                "by_priority": by_prio, "evicted": counters.get("evicted", 0),
                "refused": counters.get("refused", 0), "undecryptable": self.undecryptable}

    def close(self) -> None:
        """Checkpoint and close the database."""
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()
