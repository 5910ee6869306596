"""The admin database (sqlite3, parameterised statements only): accounts, sessions, settings,
login throttling and maintenance windows. Secrets are never stored: passwords as scrypt hashes,
session and CSRF tokens as HMACs under a key-store pepper.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

DB_FILE = "admin/admin.db"

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
"""


class AdminDB:
    """Thin, thread-safe access to the admin database."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.path.chmod(0o600)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA secure_delete = ON")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Run one parameterised statement and return its rows."""
        with self.lock:
            return list(self.conn.execute(sql, params))

    # -- accounts ---------------------------------------------------------------------------
    def account(self, name: str) -> dict[str, Any] | None:
        """One account (credential record decoded), or None."""
        rows = self.q("SELECT name, role, credential, created, created_by FROM accounts "
                      "WHERE name = ?", (name,))
        if not rows:
            return None
        d = dict(rows[0])
        d["credential"] = json.loads(d["credential"])
        return d

    def accounts(self) -> list[dict[str, Any]]:
        """Every account without its credential."""
        rows = self.q("SELECT name, role, credential, created, created_by FROM accounts "
                      "ORDER BY name")
        out = []
        for r in rows:
            d = dict(r)
            d["must_change"] = bool(json.loads(d.pop("credential")).get("must_change"))
            out.append(d)
        return out

    def put_account(self, name: str, role: str, credential: dict[str, Any], now: float,
                    by: str) -> None:
        """Create or replace an account."""
        self.q("INSERT OR REPLACE INTO accounts (name, role, credential, created, created_by) "
               "VALUES (?, ?, ?, ?, ?)", (name, role, json.dumps(credential), now, by))

    def set_credential(self, name: str, credential: dict[str, Any]) -> None:
        """Replace an account's credential record."""
        self.q("UPDATE accounts SET credential = ? WHERE name = ?",
               (json.dumps(credential), name))

    def delete_account(self, name: str) -> int:
        """Delete an account and its sessions; returns the number of accounts removed."""
        with self.lock:
            self.q("DELETE FROM sessions WHERE account = ?", (name,))
            cur = self.conn.execute("DELETE FROM accounts WHERE name = ?", (name,))
            return cur.rowcount

    # -- sessions ---------------------------------------------------------------------------
    def add_session(self, row: dict[str, Any]) -> None:
        """Store a new session (token and CSRF token already hashed)."""
        self.q("INSERT INTO sessions (token_hash, csrf_hash, account, role, addr, created, "
               "last_seen, expires, window_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (row["token_hash"], row["csrf_hash"], row["account"], row["role"], row["addr"],
                row["created"], row["last_seen"], row["expires"], row.get("window_id")))

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """The session with that token hash, or None."""
        rows = self.q("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,))
        return dict(rows[0]) if rows else None

    def sessions(self) -> list[dict[str, Any]]:
        """Every live session row."""
        return [dict(r) for r in self.q("SELECT * FROM sessions")]

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
                cur = self.conn.execute("DELETE FROM sessions WHERE account = ?", (account,))
            return cur.rowcount

    # -- settings ---------------------------------------------------------------------------
    def settings(self) -> dict[str, dict[str, Any]]:
        """Every stored setting: name -> {value, locked, updated, updated_by}."""
        out = {}
        for r in self.q("SELECT name, value, locked, updated, updated_by FROM settings"):
            out[r["name"]] = {"value": json.loads(r["value"]), "locked": bool(r["locked"]),
                              "updated": r["updated"], "updated_by": r["updated_by"]}
        return out

    def put_setting(self, name: str, value: Any, locked: bool, now: float, by: str) -> None:
        """Create or replace a setting."""
        self.q("INSERT OR REPLACE INTO settings (name, value, locked, updated, updated_by) "
               "VALUES (?, ?, ?, ?, ?)", (name, json.dumps(value), int(locked), now, by))

    # -- throttle ---------------------------------------------------------------------------
    def throttle(self, key: str) -> tuple[int, float]:
        """(failures, blocked_until) for a throttle key."""
        rows = self.q("SELECT failures, blocked_until FROM throttle WHERE key = ?", (key,))
        return (int(rows[0][0]), float(rows[0][1])) if rows else (0, 0.0)

    def set_throttle(self, key: str, failures: int, blocked_until: float) -> None:
        """Persist a throttle key's state (a restart does not reset a lockout)."""
        self.q("INSERT OR REPLACE INTO throttle (key, failures, blocked_until) VALUES (?, ?, ?)",
               (key, failures, blocked_until))

    def clear_throttle(self, key: str) -> None:
        """Forget a throttle key's failures."""
        self.q("DELETE FROM throttle WHERE key = ?", (key,))

    # -- maintenance windows ----------------------------------------------------------------
    def open_window(self, by: str, now: float, expires: float) -> int:
        """Open a maintenance window; returns its id."""
        with self.lock:
            cur = self.conn.execute("INSERT INTO windows (opened_by, opened, expires) "
                                    "VALUES (?, ?, ?)", (by, now, expires))
            return int(cur.lastrowid or 0)

    def open_windows(self, now: float) -> list[dict[str, Any]]:
        """Windows that are open now."""
        return [dict(r) for r in self.q("SELECT * FROM windows WHERE closed = 0 AND "
                                        "expires > ? ORDER BY id", (now,))]

    def close_windows(self) -> int:
        """Close every window; returns how many."""
        with self.lock:
            return self.conn.execute("UPDATE windows SET closed = 1 WHERE closed = 0").rowcount
