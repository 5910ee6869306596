"""The admin database (sqlite3, parameterised statements only): accounts, sessions, settings,
login throttling and maintenance windows. Secrets are never stored: passwords as scrypt hashes,
session and CSRF tokens as HMACs under a key-store pepper.

Personal values never reach the file (or its journal) in clear: account names and throttle keys
are AES-SIV encrypted (lookups by equality still work), credentials, addresses, setting values
and who-did-what columns AES-GCM encrypted, under the ``admin-db-fields`` key (see
``owner.atrest``); ``secure_delete`` zeroes deleted rows. ``rekey()`` re-seals everything under
a new key (ownership transfer), so what an old journal or a freed block still holds is
unreadable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import IntegrityError
from firmware.gateway.identity.atrest import FieldCipher, StoreKey

DB_FILE = "admin/admin.db"
FIELDS_KEY = "admin-db-fields"
FORMAT = "2"  # 1: plaintext columns (migrated on open)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, credential TEXT NOT NULL,
    created REAL NOT NULL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, csrf_hash TEXT NOT NULL, account TEXT NOT NULL,
    role TEXT NOT NULL, addr TEXT NOT NULL, created REAL NOT NULL, last_seen REAL NOT NULL,
    expires REAL NOT NULL, window_id INTEGER);
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, locked INTEGER NOT NULL,
    updated REAL NOT NULL, updated_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS throttle (
    key TEXT PRIMARY KEY, failures INTEGER NOT NULL, blocked_until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS windows (
    id INTEGER PRIMARY KEY AUTOINCREMENT, opened_by TEXT NOT NULL, opened REAL NOT NULL,
    expires REAL NOT NULL, closed INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""
# (table, column, how): "index" = AES-SIV (looked up), "seal" = AES-GCM, "json" = sealed JSON
# whose field name includes the row's setting name.
SEALED = (("accounts", "name", "index"), ("accounts", "credential", "seal"),
          ("accounts", "created_by", "seal"), ("sessions", "account", "index"),
          ("sessions", "addr", "seal"), ("settings", "value", "seal"),
          ("settings", "updated_by", "seal"), ("throttle", "key", "index"),
          ("windows", "opened_by", "seal"))
_KEYS = {"accounts": "name", "sessions": "token_hash", "settings": "name", "throttle": "key",
         "windows": "id"}
_PURPOSE = "at-rest key of the personal fields of the admin database"


class AdminDB:
    """Thin, thread-safe access to the admin database."""

    def __init__(self, state_dir: Path, board: Board | None = None) -> None:
        self.path = Path(state_dir) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.path.chmod(0o600)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA secure_delete = ON")
        self.conn.executescript(_SCHEMA)
        self.key = StoreKey(state_dir, board, FIELDS_KEY, _PURPOSE)
        stored = self._meta("kid")
        self.c: FieldCipher
        self.c, kid = self.key.open(stored)
        if stored is None:
            self._adopt(kid)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run one parameterised statement and return its rows."""
        with self.lock:
            return list(self.conn.execute(sql, params))

    # -- sealing ----------------------------------------------------------------------------
    def _meta(self, k: str) -> str | None:
        rows = self.q("SELECT v FROM meta WHERE k = ?", (k,))
        return str(rows[0][0]) if rows else None

    def _n(self, name: str) -> str:
        return self.c.index(name, "name")

    def _seal(self, value: str, field: str) -> str:
        return self.c.seal_text(value, field)

    def _open(self, token: str, field: str) -> str:
        return self.c.open_text(token, field)

    def _convert(self, table: str, column: str, how: str, value: Any, row: dict[str, Any],
                 c: FieldCipher | None, seal: bool) -> Any:
        field = "name" if column in ("name", "account") and how == "index" else column
        if table == "throttle":
            field = "throttle"
        if table == "settings" and column == "value":
            field = "setting:" + str(row["name"])
        if c is None:  # plaintext (format 1) rows
            return value
        if how == "index":
            return c.index(value, field) if seal else c.unindex(value, field)
        return c.seal_text(value, field) if seal else c.open_text(value, field)

    def _reseal(self, old: FieldCipher | None, new: FieldCipher) -> None:
        """Rewrite every sealed column from the old cipher (None: plaintext) to the new one."""
        for table, key in _KEYS.items():
            cols = [(c, how) for t, c, how in SEALED if t == table]
            for r in [dict(x) for x in self.conn.execute(f"SELECT * FROM {table}")]:  # noqa: S608
                plain = {c: self._convert(table, c, how, r[c], r, old, False) for c, how in cols}
                sealed = {c: self._convert(table, c, how, plain[c], r, new, True)
                          for c, how in cols}
                sets = ", ".join(f"{c} = ?" for c, _ in cols)
                self.conn.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?",  # noqa: S608
                                  (*[sealed[c] for c, _ in cols], r[key]))

    def _adopt(self, kid: str) -> None:
        """A new database gets the key id; an old plaintext one (format 1) is sealed."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._reseal(None, self.c)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('kid', ?), "
                                  "('format', ?)", (kid, FORMAT))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("VACUUM")  # no plaintext page left in the file

    def rekey(self) -> None:
        """Re-seal every personal field under a new key and destroy the old key."""
        with self.lock:
            new, kid = self.key.begin_rotation()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self._reseal(self.c, new)
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('kid', ?)", (kid,))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.key.finish_rotation()
            self.c = new
            self.conn.execute("VACUUM")

    # -- accounts ---------------------------------------------------------------------------
    def _account_row(self, r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        d["name"] = self.c.unindex(d["name"], "name")
        d["credential"] = json.loads(self._open(d["credential"], "credential"))
        d["created_by"] = self._open(d["created_by"], "created_by")
        return d

    def account(self, name: str) -> dict[str, Any] | None:
        """One account (credential record decoded), or None."""
        rows = self.q("SELECT name, role, credential, created, created_by FROM accounts "
                      "WHERE name = ?", (self._n(name),))
        return self._account_row(rows[0]) if rows else None

    def accounts(self) -> list[dict[str, Any]]:
        """Every account without its credential."""
        out = []
        for r in self.q("SELECT name, role, credential, created, created_by FROM accounts"):
            d = self._account_row(r)
            d["must_change"] = bool(d.pop("credential").get("must_change"))
            out.append(d)
        return sorted(out, key=lambda d: str(d["name"]))

    def put_account(self, name: str, role: str, credential: dict[str, Any], now: float,
                    by: str) -> None:
        """Create or replace an account."""
        self.q("INSERT OR REPLACE INTO accounts (name, role, credential, created, created_by) "
               "VALUES (?, ?, ?, ?, ?)", (self._n(name), role,
                                          self._seal(json.dumps(credential), "credential"), now,
                                          self._seal(by, "created_by")))

    def set_credential(self, name: str, credential: dict[str, Any]) -> None:
        """Replace an account's credential record."""
        self.q("UPDATE accounts SET credential = ? WHERE name = ?",
               (self._seal(json.dumps(credential), "credential"), self._n(name)))

    def set_created_by(self, name: str, by: str) -> None:
        """Rewrite who created an account (ownership transfer forgets old owners)."""
        self.q("UPDATE accounts SET created_by = ? WHERE name = ?",
               (self._seal(by, "created_by"), self._n(name)))

    def delete_account(self, name: str) -> int:
        """Delete an account and its sessions; returns the number of accounts removed."""
        with self.lock:
            self.q("DELETE FROM sessions WHERE account = ?", (self._n(name),))
            cur = self.conn.execute("DELETE FROM accounts WHERE name = ?", (self._n(name),))
            return cur.rowcount

    # -- sessions ---------------------------------------------------------------------------
    def add_session(self, row: dict[str, Any]) -> None:
        """Store a new session (token and CSRF token already hashed)."""
        self.q("INSERT INTO sessions (token_hash, csrf_hash, account, role, addr, created, "
               "last_seen, expires, window_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row["token_hash"], row["csrf_hash"], self._n(row["account"]), row["role"],
                self._seal(row["addr"], "addr"), row["created"], row["last_seen"],
                row["expires"], row.get("window_id")))

    def _session_row(self, r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        d["account"] = self.c.unindex(d["account"], "name")
        d["addr"] = self._open(d["addr"], "addr")
        return d

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """The session with that token hash, or None."""
        rows = self.q("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,))
        return self._session_row(rows[0]) if rows else None

    def sessions(self) -> list[dict[str, Any]]:
        """Every live session row."""
        return [self._session_row(r) for r in self.q("SELECT * FROM sessions")]

    def touch_session(self, token_hash: str, now: float) -> None:
        """Record activity on a session."""
        self.q("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, token_hash))

    def drop_session(self, token_hash: str) -> None:
        """Revoke one session."""
        self.q("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def drop_sessions(self, account: str | None = None) -> int:
        """Revoke every session (or one account's); returns how many."""
        with self.lock:
            if account is None:
                cur = self.conn.execute("DELETE FROM sessions")
            else:
                cur = self.conn.execute("DELETE FROM sessions WHERE account = ?",
                                        (self._n(account),))
            return cur.rowcount

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        """Every stored setting: name -> {value, locked, updated, updated_by}.

        A value that fails authentication (edited behind the API's back) reads as None with
        ``intact: False``, so it shows as drift instead of hiding the others.
        """
        out = {}
        for r in self.q("SELECT name, value, locked, updated, updated_by FROM settings"):
            name = str(r["name"])
            try:
                value, intact = json.loads(self._open(r["value"], "setting:" + name)), True
            except (IntegrityError, ValueError):
                value, intact = None, False
            try:
                by = self._open(r["updated_by"], "updated_by")
            except IntegrityError:
                by, intact = "?", False
            out[name] = {"value": value, "locked": bool(r["locked"]), "updated": r["updated"],
                         "updated_by": by, "intact": intact}
        return out

    def put_setting(self, name: str, value: Any, locked: bool, now: float, by: str) -> None:
        """Create or replace a setting."""
        self.q("INSERT OR REPLACE INTO settings (name, value, locked, updated, updated_by) "
               "VALUES (?, ?, ?, ?, ?)", (name, self._seal(json.dumps(value), "setting:" + name),
                                          int(locked), now, self._seal(by, "updated_by")))

    # -- throttle ---------------------------------------------------------------------------
    def throttle(self, key: str) -> tuple[int, float]:
        """(failures, blocked_until) for a throttle key."""
        rows = self.q("SELECT failures, blocked_until FROM throttle WHERE key = ?",
                      (self.c.index(key, "throttle"),))
        return (int(rows[0][0]), float(rows[0][1])) if rows else (0, 0.0)

    def throttles(self) -> list[dict[str, Any]]:
        """Every throttle record (key decrypted)."""
        return [{"key": self.c.unindex(r["key"], "throttle"), "failures": r["failures"],
                 "blocked_until": r["blocked_until"]}
                for r in self.q("SELECT key, failures, blocked_until FROM throttle")]

    def set_throttle(self, key: str, failures: int, blocked_until: float) -> None:
        """Persist a throttle key's state (a restart does not reset a lockout)."""
        self.q("INSERT OR REPLACE INTO throttle (key, failures, blocked_until) VALUES (?, ?, ?)",
               (self.c.index(key, "throttle"), failures, blocked_until))

    def clear_throttle(self, key: str) -> None:
        """Forget a throttle key's failures."""
        self.q("DELETE FROM throttle WHERE key = ?", (self.c.index(key, "throttle"),))

    def clear_throttles(self) -> int:
        """Forget every throttle record; returns how many."""
        with self.lock:
            return self.conn.execute("DELETE FROM throttle").rowcount

    # -- maintenance windows ----------------------------------------------------------------
    def open_window(self, by: str, now: float, expires: float) -> int:
        """Open a maintenance window; returns its id."""
        with self.lock:
            cur = self.conn.execute("INSERT INTO windows (opened_by, opened, expires) "
                                    "VALUES (?, ?, ?)", (self._seal(by, "opened_by"), now,
                                                         expires))
            return int(cur.lastrowid or 0)

    def _window_row(self, r: sqlite3.Row) -> dict[str, Any]:
        d = dict(r)
        d["opened_by"] = self._open(d["opened_by"], "opened_by")
        return d

    def open_windows(self, now: float) -> list[dict[str, Any]]:
        """Windows that are open now."""
        return [self._window_row(r) for r in self.q("SELECT * FROM windows WHERE closed = 0 "
                                                     "AND expires > ? ORDER BY id", (now,))]

    def windows(self) -> list[dict[str, Any]]:
        """Every window, open or closed."""
        return [self._window_row(r) for r in self.q("SELECT * FROM windows ORDER BY id")]

    def delete_window(self, window_id: int) -> None:
        """Forget one window (and end its sessions)."""
        with self.lock:
            self.conn.execute("DELETE FROM sessions WHERE window_id = ?", (window_id,))
            self.conn.execute("DELETE FROM windows WHERE id = ?", (window_id,))

    def close_windows(self) -> int:
        """Close every window; returns how many."""
        with self.lock:
            return self.conn.execute("UPDATE windows SET closed = 1 WHERE closed = 0").rowcount
