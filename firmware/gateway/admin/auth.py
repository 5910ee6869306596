"""Credentials, session tokens and login throttling of the admin interface.

Session and CSRF tokens are 256-bit random values; only their HMAC under a key-store pepper is
stored, so a copy of the database yields no usable token and rotating the pepper revokes all.
Throttling (``Throttle``): back-off and lockout per (account, source) and per source, an
account-wide count that alerts and slows failing sources but never refuses a source that has
not failed; the state is in the database, so a restart does not lift a lockout.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.passwords import AdminCredential, hash_credential, verify_hash
from firmware.core.errors import AuthError, StateError
from firmware.gateway.admin.db import AdminDB
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore

PEPPER = "admin-session-pepper"
INSTALLER_ACCOUNT = "installer"
PAIR_LOCK_AFTER = 5
ADDRESS_LOCK_AFTER = 20
ACCOUNT_ALERT_AFTER = 5
MANY_SOURCES = 3
LOCKOUT_S = 15 * 60
BACKOFF_CAP_S = 60.0
_DUMMY: list[str] = []


def pepper(state_dir: Path, board: Board | None = None) -> bytes:
    """The session-token pepper (created on first use)."""
    ks = KeyStore(state_dir, board)
    if not ks.has(PEPPER):
        rotate_pepper(state_dir, board)
    return ks.get(PEPPER)


def rotate_pepper(state_dir: Path, board: Board | None = None) -> None:
    """Replace the pepper: every stored session and CSRF token stops matching."""
    KeyStore(state_dir, board).put(PEPPER, secrets.token_bytes(32),
                                   "HMAC pepper of admin session and CSRF tokens",
                                   "HMAC-SHA256", 256, "generated on the gateway", 365,
                                   replace=True)


def token_hash(pep: bytes, token: str) -> str:
    """What is stored for a token."""
    return hmac.new(pep, token.encode(), hashlib.sha256).hexdigest()


def new_token() -> str:
    """A fresh opaque token (256 bits)."""
    return secrets.token_urlsafe(32)


class Credentials:
    """Verify and change account credentials (installer: the provisioned one in the key store)."""

    def __init__(self, state_dir: Path, db: AdminDB) -> None:
        self.state_dir = Path(state_dir)
        self.db = db

    def role_of(self, account: str) -> str | None:
        """The account's role, or None when it does not exist."""
        if account == INSTALLER_ACCOUNT:
            return "installer" if self._installer() is not None else None
        acc = self.db.account(account)
        return str(acc["role"]) if acc else None

    def _installer(self) -> AdminCredential | None:
        try:
            return install.admin_credential(self.state_dir)
        except StateError:
            return None

    def _record(self, account: str) -> AdminCredential | None:
        if account == INSTALLER_ACCOUNT:
            return self._installer()
        acc = self.db.account(account)
        return AdminCredential(acc["credential"]) if acc else None

    def must_change(self, account: str) -> bool:
        """Whether the account still has its initial credential."""
        rec = self._record(account)
        return bool(rec and rec.record["must_change"])

    def authenticate(self, account: str, secret: str) -> str:
        """The role for a right credential; AuthError / MustChangeCredential otherwise."""
        rec = self._record(account)
        if rec is None:
            if not _DUMMY:
                _DUMMY.append(hash_credential(secrets.token_hex(8)))
            verify_hash(secret, _DUMMY[0])  # same cost as a real account: no enumeration
            raise AuthError("wrong account or credential")
        rec.authenticate(secret)
        role = self.role_of(account)
        assert role is not None
        return role

    def change(self, account: str, old: str, new: str) -> None:
        """Change a credential (the old one is required); persists it."""
        if account == INSTALLER_ACCOUNT:
            if self._installer() is None:
                raise AuthError("wrong account or credential")
            install.change_admin_credential(self.state_dir, old, new)
            return
        rec = self._record(account)
        if rec is None:
            verify_hash(old, hash_credential(secrets.token_hex(8)))
            raise AuthError("wrong account or credential")
        self.db.set_credential(account, rec.change(old, new))


class Throttle:
    """Login throttling that an unauthenticated third party cannot turn against the right
    credential.

    Refusals are per (account, source address) and per source address: exponential back-off,
    then a lockout. Failures are also counted per account across every source; past a limit
    the account is under attack: an alert is raised (``alert`` severity when the failures come
    from many sources) and each failing source waits longer before its next guess, but a
    source that has not failed is still evaluated, so the right credential still logs in.
    """

    def __init__(self, db: AdminDB) -> None:
        self.db = db

    @staticmethod
    def keys(account: str, addr: str) -> list[tuple[str, int]]:
        """Throttle keys that refuse an attempt, with their lockout limits."""
        return [(_pair(account, addr), PAIR_LOCK_AFTER), ("address:" + addr, ADDRESS_LOCK_AFTER)]

    def blocked(self, account: str, addr: str, now: float) -> tuple[str, float] | None:
        """(reason, seconds to wait) when an attempt must be refused unevaluated."""
        for key, limit in self.keys(account, addr):
            failures, until = self.db.throttle(key)
            if until > now:
                why = "locked" if failures >= limit else "back-off"
                return "%s (%s)" % (why, _SCOPE[key.split(":", 1)[0]]), until - now
        return None

    def failure(self, account: str, addr: str, now: float) -> list[tuple[str, str, str]]:
        """Record a failed attempt; returns the alerts it raises as (severity, result, reason)."""
        alerts = []
        attack = self._account_failure(account, now)
        for key, limit in self.keys(account, addr):
            failures, _ = self.db.throttle(key)
            failures += 1
            if failures >= limit:
                until = now + LOCKOUT_S
                if failures == limit:
                    alerts.append(("warning", "locked", "repeated failures (per %s)"
                                   % _SCOPE[key.split(":", 1)[0]]))
            else:
                wait = min(2.0 ** (failures - 2), BACKOFF_CAP_S) if failures > 1 else 0.0
                if attack >= ACCOUNT_ALERT_AFTER:
                    wait = max(wait, min(2.0 ** (attack - ACCOUNT_ALERT_AFTER), BACKOFF_CAP_S))
                until = now + wait
            self.db.set_throttle(key, failures, until)
        alert = self._attack_alert(account, attack)
        if alert is not None:
            alerts.append(alert)
        return alerts

    def _account_failure(self, account: str, now: float) -> int:
        """Count a failure against the account (forgotten after a quiet lockout period)."""
        failures, quiet_from = self.db.throttle("account:" + account)
        failures = (failures if quiet_from > now else 0) + 1
        self.db.set_throttle("account:" + account, failures, now + LOCKOUT_S)
        return failures

    def _attack_alert(self, account: str, failures: int) -> tuple[str, str, str] | None:
        # Raised once when the count reaches the limit, and again when the failures newly
        # come from many sources (the count of sources only grows by one per failure).
        prefix = _pair(account, "")
        sources = sum(1 for t in self.db.throttles() if t["key"].startswith(prefix))
        if failures < ACCOUNT_ALERT_AFTER or (
                failures > ACCOUNT_ALERT_AFTER and sources != MANY_SOURCES):
            return None
        many = sources >= MANY_SOURCES
        return ("alert" if many else "warning", "under-attack",
                "%d failures from %s (per account; the right credential is still accepted "
                "from a source that has not failed)"
                % (failures, "%d sources" % sources if many else "few sources"))

    def success(self, account: str, addr: str) -> None:
        """A right credential clears its source's records (not the account-wide count, which an
        attacker would otherwise reset by logging in to an account of their own)."""
        for key, _ in self.keys(account, addr):
            self.db.clear_throttle(key)

    def state(self) -> list[dict[str, Any]]:
        """Current throttle records (for status)."""
        return self.db.throttles()


_SCOPE = {"pair": "account and address", "address": "address"}


def _pair(account: str, addr: str) -> str:
    return "pair:%s %s" % (account, addr)
