"""What every admin API resource shares: the state directory, the database, credentials,
sessions, events, the installer-locked settings and the gateway summary.

``AdminCore`` is the base of each resource's routes (``admin/resources/``); ``AdminApp``
(``admin/app.py``) assembles them behind one request pipeline. What the admin room needs of
other rooms is handed in (``runtime/interfaces.py``): the firmware status and the live
commissioning self-test.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.passwords import MIN_NEW_LENGTH, hash_credential
from firmware.core.errors import PolicyError, StateError
from firmware.core.events import Event
from firmware.gateway.admin import auth, roles, settings
from firmware.gateway.admin.db import AdminDB
from firmware.gateway.admin.web import COOKIE
from firmware.gateway.runtime.interfaces import Commission, FirmwareStatus
from firmware.gateway.runtime.resalemarker import marker as resale_marker

log = logging.getLogger("mamori.admin")

IDLE_S = 15 * 60
ABSOLUTE_S = 8 * 3600
REFUSAL_LOG_S = 60.0
WEAK = {"password1234", "administrator", "changemechangeme", "mamorimamori"}

Emit = Callable[[Event], Any]


class Session:
    """The authenticated caller of one request."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.token_hash = str(row["token_hash"])
        self.account = str(row["account"])
        self.role = str(row["role"])
        self.expires = float(row["expires"])
        self.csrf_hash = str(row["csrf_hash"])
        self.maintenance = row.get("window_id") is not None


class AdminCore:
    """The admin API's shared state and plumbing over one gateway state directory."""

    def __init__(self, state_dir: Path, board: Board | None = None,
                 emit: Emit | None = None, clock: Callable[[], float] = time.time, *,
                 firmware: FirmwareStatus | None = None,
                 commission: Commission | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.board = board
        self.emit_fn = emit
        self.clock = clock
        self.firmware = firmware  # the update room's status (from composition)
        self.commission = commission  # the live commissioning self-test (from composition)
        self.db = AdminDB(self.state_dir, board)
        self.creds = auth.Credentials(self.state_dir, self.db)
        self.throttle = auth.Throttle(self.db)
        self.lock = threading.RLock()
        self.pepper = auth.pepper(self.state_dir, board)
        self.manifest = settings.LockManifest(self.state_dir, board)
        # Host header values served; None only while no transport serves the app (in-process).
        self.hosts: frozenset[str] | None = None
        self._refusals: dict[str, tuple[float, int]] = {}
        self._refusals_lock = threading.Lock()
        self._init_settings()

    def close(self) -> None:
        """Release the database."""
        self.db.close()

    def event(self, kind: str, severity: str, principal: str, action: str, target: str,
              result: str, reason: str = "", source: str = "local-admin",
              **params: Any) -> None:
        """Emit an Event (source local-admin or maintenance); never carries a secret."""
        if self.emit_fn is None:
            return
        try:
            self.emit_fn(Event(kind, severity=severity, source=source, principal=principal,
                               action=action, target=target, result=result, reason=reason,
                               params=params))
        except Exception:
            log.exception("admin event could not be emitted")

    def refused(self, kind: str, reason: str, addr: str, severity: str = "warning") -> None:
        """Log a refused unauthenticated request: the first of a kind per minute, then how many
        were left out (a flood of them cannot fill the log)."""
        now = self.clock()
        with self._refusals_lock:  # also called from the server's accept thread
            last, left_out = self._refusals.get(kind, (float("-inf"), 0))
            if now - last < REFUSAL_LOG_S:
                self._refusals[kind] = (last, left_out + 1)
                return
            self._refusals[kind] = (now, 0)
        self.event(kind, severity, "", "request", "admin", "refused", reason, addr=addr,
                   suppressed=left_out)

    # -- installer-locked settings ----------------------------------------------------------
    def _init_settings(self) -> None:
        stored = self.db.settings()
        now = self.clock()
        added = False
        for name, decl in settings.SCHEMA.items():
            if name not in stored:
                self.db.put_setting(name, decl["default"], bool(decl.get("locked")), now,
                                    "defaults")
                added = True
        if added and not self.manifest.path.exists():
            self._record_locks()

    def _record_locks(self) -> None:
        self.manifest.write(self.locked_settings())

    def locked_settings(self) -> dict[str, Any]:
        """Installer-locked settings and their current values."""
        return {n: s["value"] for n, s in self.db.settings().items() if s["locked"]}

    def drift(self) -> list[str]:
        """Drift of installer-locked settings against the MAC-protected record (R2-6)."""
        return self.manifest.drift(self.locked_settings())

    # -- sessions ---------------------------------------------------------------------------
    @staticmethod
    def _source(sess: Session) -> str:
        return "maintenance" if sess.role == roles.MAINTENANCE else "local-admin"

    def _end_session(self, sess: Session, why: str) -> None:
        self.db.drop_session(sess.token_hash)
        kind = "maintenance.session.expired" if sess.maintenance else "admin.session.expired"
        self.event(kind, "notice" if sess.maintenance else "info", sess.account, "session-end",
                   "session", "expired", why, source=self._source(sess))

    def _new_session(self, account: str, role: str, addr: str, expires: float,
                     window: int | None) -> tuple[str, str]:
        token, csrf = auth.new_token(), auth.new_token()
        now = self.clock()
        self.db.add_session({"token_hash": auth.token_hash(self.pepper, token),
                             "csrf_hash": auth.token_hash(self.pepper, csrf), "account": account,
                             "role": role, "addr": addr, "created": now, "last_seen": now,
                             "expires": expires, "window_id": window})
        return token, csrf

    @staticmethod
    def _cookie(token: str, max_age: int) -> str:
        return "%s=%s; Path=/; Max-Age=%d; Secure; HttpOnly; SameSite=Strict" % (
            COOKIE, token, max_age)

    # -- accounts ---------------------------------------------------------------------------
    def _check_new(self, new: str) -> None:
        if len(new) < MIN_NEW_LENGTH or new.lower() in WEAK or len(set(new)) < 5:
            raise PolicyError("the new credential is too short or too easy to guess "
                              "(at least %d varied characters)" % MIN_NEW_LENGTH)

    def create_account(self, name: str, role: str, password: str, by: str) -> None:
        """Create an operator account whose credential must be changed at first use."""
        if name == auth.INSTALLER_ACCOUNT or self.db.account(name) is not None:
            raise StateError("an account with that name exists")
        self._check_new(password)
        self.db.put_account(name, role, {"hash": hash_credential(password), "must_change": True},
                            self.clock(), by)

    # -- summary ----------------------------------------------------------------------------
    def status_doc(self) -> dict[str, Any]:
        """Summary for GET /api/status and the service status."""
        doc: dict[str, Any] = {"installer_credential":
                               "absent" if self.creds.role_of(auth.INSTALLER_ACCOUNT) is None
                               else ("initial" if self.creds.must_change(auth.INSTALLER_ACCOUNT)
                                     else "changed"),
                               "accounts": len(self.db.accounts()),
                               "sessions": len(self.db.sessions()),
                               "locked_settings_drift": self.drift(),
                               "resale": resale_marker(self.state_dir)}
        if self.firmware is None:
            doc["firmware"] = {"error": "not reported here (no update agent handed in)"}
            return doc
        try:
            doc["firmware"] = self.firmware()
        except Exception as exc:  # the update agent is optional on this board
            doc["firmware"] = {"error": type(exc).__name__}
        return doc
