"""Logging in and out, this session, and changing one's own credential (first use included)."""

from __future__ import annotations

from typing import Any

from firmware.common.passwords import MustChangeCredential
from firmware.core.errors import AuthError
from firmware.gateway.admin import roles
from firmware.gateway.admin.core import ABSOLUTE_S, AdminCore, Session
from firmware.gateway.admin.web import Request, Response, error


class SessionRoutes(AdminCore):
    """POST /api/login, /api/credential/initial, /api/logout, /api/credential; GET /api/session."""

    def _throttled(self, account: str, req: Request, action: str) -> Response | None:
        blocked = self.throttle.blocked(account, req.addr, self.clock())
        if blocked is None:
            return None
        why, wait = blocked
        self.event("admin.login", "notice", account, action, "admin", "refused", why,
                   addr=req.addr)
        return error(429, "throttled", "too many failed attempts; try again later",
                     retry_after=int(wait) + 1)

    def _failed(self, account: str, req: Request, action: str) -> Response:
        for severity, result, why in self.throttle.failure(account, req.addr, self.clock()):
            self.event("admin.lockout", severity, account, action, "admin", result, why,
                       addr=req.addr)
        self.event("admin.login", "notice", account, action, "admin", "fail",
                   "wrong account or credential", addr=req.addr)
        return error(401, "auth", "wrong account or credential")

    def h_login(self, req: Request, _s: None, _p: dict[str, str], body: Any) -> Response:
        """POST /api/login."""
        account, secret = body["account"], body["password"]
        refused = self._throttled(account, req, "login")
        if refused is not None:
            return refused
        try:
            role = self.creds.authenticate(account, secret)
        except MustChangeCredential:
            self.event("admin.login", "notice", account, "login", "admin", "refused",
                       "initial credential not changed yet", addr=req.addr)
            return error(403, "must-change", "the initial credential must be changed first",
                         change_route="/api/credential/initial")
        except AuthError:
            return self._failed(account, req, "login")
        self.throttle.success(account, req.addr)
        now = self.clock()
        window = None
        expires = now + ABSOLUTE_S
        source = "local-admin"
        if role == roles.MAINTENANCE:
            source = "maintenance"
            open_ = self.db.open_windows(now)
            if not open_:
                self.event("maintenance.login", "notice", account, "login", "admin",
                           "refused", "no maintenance window is open", source=source,
                           addr=req.addr)
                return error(403, "no-window", "no maintenance window is open")
            window, expires = int(open_[-1]["id"]), min(expires, float(open_[-1]["expires"]))
        token, csrf = self._new_session(account, role, req.addr, expires, window)
        self.event("maintenance.session.start" if window else "admin.login", "info", account,
                   "login", "admin", "ok", source=source, role=role, addr=req.addr,
                   expires=expires)
        resp = Response(200, {"account": account, "role": role, "csrf_token": csrf,
                              "expires": expires})
        resp.cookies.append(self._cookie(token, max(1, int(expires - now))))
        return resp

    def h_change_initial(self, req: Request, _s: None, _p: dict[str, str],
                         body: Any) -> Response:
        """POST /api/credential/initial."""
        account = body["account"]
        refused = self._throttled(account, req, "change-credential")
        if refused is not None:
            return refused
        self._check_new(body["new"])
        try:
            self.creds.change(account, body["old"], body["new"])
        except AuthError:
            return self._failed(account, req, "change-credential")
        self.throttle.success(account, req.addr)
        self.db.drop_sessions(account)
        self.event("admin.credential.changed", "notice", account, "change-credential",
                   account, "ok", addr=req.addr)
        return Response(204)

    def h_logout(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """POST /api/logout."""
        self.db.drop_session(s.token_hash)
        self.event("admin.logout", "info", s.account, "logout", "session", "ok",
                   source=self._source(s))
        resp = Response(204)
        resp.cookies.append(self._cookie("", 0))
        return resp

    def h_session_info(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/session."""
        return Response(200, {"account": s.account, "role": s.role, "expires": s.expires,
                              "maintenance": s.maintenance,
                              "permissions": sorted(roles.PERMISSIONS[s.role])})

    def h_change_own(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """POST /api/credential."""
        self._check_new(body["new"])
        self.creds.change(s.account, body["old"], body["new"])
        self.db.drop_sessions(s.account)
        self.event("admin.credential.changed", "notice", s.account, "change-credential",
                   s.account, "ok", source=self._source(s))
        resp = Response(204)
        resp.cookies.append(self._cookie("", 0))
        return resp
