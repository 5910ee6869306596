"""The admin API application (transport-free): authentication, authorisation, CSRF, handlers.

``AdminApp.handle(Request) -> Response`` is what the HTTPS server calls for each request; tests
and the self-test call it directly or over loopback HTTPS. Every response carries the security
headers (see ``web.SECURITY_HEADERS``), errors included.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.passwords import MIN_NEW_LENGTH, MustChangeCredential, hash_credential
from firmware.core import strictjson
from firmware.core.errors import (
    AuthError,
    ConfigError,
    IntegrityError,
    MamoriError,
    PolicyError,
    ProtocolError,
    StateError,
)
from firmware.core.events import Event
from firmware.gateway.admin import auth, openapi, roles, schema, settings
from firmware.gateway.admin.commissioning import CommissioningRoutes
from firmware.gateway.admin.db import AdminDB
from firmware.gateway.admin.routes import ROUTES, Route
from firmware.gateway.admin.web import (
    COOKIE,
    MAX_BODY,
    Request,
    Response,
    error,
    split_path,
    valid_segment,
)
from firmware.gateway.owner.personal import PersonalStore

log = logging.getLogger("mamori.admin")

IDLE_S = 15 * 60
BODY_DEPTH = 8  # request bodies are flat objects (personal data: one level more)
ABSOLUTE_S = 8 * 3600
DIAG_DIR = "admin/diagnostics"
MAX_DIAG = 64 * 1024
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


class AdminApp(CommissioningRoutes):
    """The local admin Web API over one gateway state directory."""

    def __init__(self, state_dir: Path, board: dict[str, Any] | None = None,
                 emit: Emit | None = None, clock: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.board = board
        self.emit_fn = emit
        self.clock = clock
        self.db = AdminDB(self.state_dir, board)
        self.creds = auth.Credentials(self.state_dir, self.db)
        self.throttle = auth.Throttle(self.db)
        self.lock = threading.RLock()
        self.pepper = auth.pepper(self.state_dir, board)
        self.manifest = settings.LockManifest(self.state_dir, board)
        self._init_settings()

    def close(self) -> None:
        """Release the database."""
        self.db.close()

    # -- plumbing ---------------------------------------------------------------------------
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

    # -- entry point ------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Serve one request; never raises (unexpected errors become a 500 with headers)."""
        with self.lock:
            try:
                return self._handle(req)
            except ConfigError as exc:
                return error(400, "invalid", exc.message)
            except MustChangeCredential as exc:
                return error(403, "must-change", exc.message)
            except AuthError as exc:
                return error(401, "auth", exc.message)
            except PolicyError as exc:
                return error(403, "policy", exc.message)
            except StateError as exc:
                return error(409, "state", exc.message)
            except IntegrityError as exc:
                log.error("admin request hit an integrity error: %s", exc.message)
                return error(500, "integrity", "stored data failed an integrity check")
            except MamoriError as exc:
                return error(400, exc.code, exc.message)
            except Exception:
                log.exception("admin request failed")
                return error(500, "internal", "internal error")

    def _handle(self, req: Request) -> Response:
        parts = split_path(req.target)
        if parts is None:
            return error(400, "bad-path", "malformed or disallowed request path")
        if len(req.body) > MAX_BODY:
            return error(413, "too-large", "request body is too large")
        if req.method not in ("GET", "HEAD", "POST", "PUT", "DELETE"):
            return error(405, "method", "method not allowed")
        route, params = self._route(req.method, parts)
        if route is None:
            # Unknown paths answer like protected ones to the unauthenticated.
            if self._session(req) is None:
                return error(401, "unauthenticated", "log in first")
            return error(404, "not-found", "no such route")
        if route.state_changing and not self._origin_ok(req):
            return error(403, "csrf", "cross-origin request refused")
        if route.permission is None:
            return getattr(self, "h_" + route.handler)(req, None, params, self._body(req, route))
        sess = self._session(req)
        if sess is None:
            return error(401, "unauthenticated", "log in first")
        if route.state_changing and not self._csrf_ok(req, sess):
            self.event("admin.csrf", "warning", sess.account, route.handler, route.path,
                       "refused", "missing or wrong CSRF token", addr=req.addr)
            return error(403, "csrf", "missing or wrong CSRF token")
        if not roles.allowed(sess.role, route.permission):
            self.event("admin.denied", "notice", sess.account, route.handler, route.path,
                       "refused", "role %s lacks %s" % (sess.role, route.permission),
                       source=self._source(sess))
            return error(403, "forbidden", "your role does not allow this")
        for value in params.values():
            if not valid_segment(value):
                return error(400, "bad-path", "malformed path parameter")
        return getattr(self, "h_" + route.handler)(req, sess, params, self._body(req, route))

    @staticmethod
    def _route(method: str, parts: list[str]) -> tuple[Route | None, dict[str, str]]:
        for r in ROUTES:
            params = r.match(parts)
            if params is not None and r.method == ("GET" if method == "HEAD" else method):
                return r, params
        return None, {}

    @staticmethod
    def _body(req: Request, route: Route) -> Any:
        if route.body is None:
            return None
        if req.header("content-type").split(";")[0].strip().lower() != "application/json":
            raise ConfigError("the body must be application/json")
        try:
            data = strictjson.loads(req.body, "the body", BODY_DEPTH, MAX_BODY)
        except ProtocolError as exc:
            raise ConfigError(exc.message)
        schema.check(route.body, data)
        return data

    @staticmethod
    def _origin_ok(req: Request) -> bool:
        """Cross-site requests are refused: Origin (when sent) must be this host over HTTPS."""
        origin = req.header("origin")
        if origin and origin != "https://" + req.header("host"):
            return False
        return req.header("sec-fetch-site") in ("", "same-origin", "none")

    def _csrf_ok(self, req: Request, sess: Session) -> bool:
        token = req.header("x-csrf-token")
        if not token or len(token) > 128:
            return False
        return hmac.compare_digest(auth.token_hash(self.pepper, token), sess.csrf_hash)

    @staticmethod
    def _source(sess: Session) -> str:
        return "maintenance" if sess.role == roles.MAINTENANCE else "local-admin"

    def _session(self, req: Request) -> Session | None:
        token = req.cookie(COOKIE)
        if not token or len(token) > 128:
            return None
        th = auth.token_hash(self.pepper, token)
        row = self.db.session(th)
        if row is None:
            return None
        now = self.clock()
        sess = Session(row)
        why = ""
        if now >= sess.expires:
            why = "expired"
        elif not sess.maintenance and now - float(row["last_seen"]) > IDLE_S:
            why = "idle"
        elif self.creds.role_of(sess.account) != sess.role:
            why = "account removed"
        if why:
            self._end_session(sess, why)
            return None
        self.db.touch_session(th, now)
        return sess

    def _end_session(self, sess: Session, why: str) -> None:
        self.db.drop_session(sess.token_hash)
        kind = "maintenance.session.expired" if sess.maintenance else "admin.session.expired"
        self.event(kind, "notice" if sess.maintenance else "info", sess.account, "session-end",
                   "session", "expired", why, source=self._source(sess))

    def reap(self) -> int:
        """End every expired session (maintenance sessions end by themselves); returns count."""
        with self.lock:
            now = self.clock()
            n = 0
            for row in self.db.sessions():
                s = Session(row)
                if now >= s.expires or (not s.maintenance
                                        and now - float(row["last_seen"]) > IDLE_S):
                    self._end_session(s, "expired" if now >= s.expires else "idle")
                    n += 1
            return n

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

    # -- public routes ----------------------------------------------------------------------
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
        for what in self.throttle.failure(account, req.addr, self.clock()):
            self.event("admin.lockout", "warning", account, action, "admin", "locked",
                       "repeated failures (per %s)" % what, addr=req.addr)
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

    def _check_new(self, new: str) -> None:
        if len(new) < MIN_NEW_LENGTH or new.lower() in WEAK or len(set(new)) < 5:
            raise PolicyError("the new credential is too short or too easy to guess "
                              "(at least %d varied characters)" % MIN_NEW_LENGTH)

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

    # -- session routes ---------------------------------------------------------------------
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

    def status_doc(self) -> dict[str, Any]:
        """Summary for GET /api/status and the service status."""
        from firmware.gateway.owner import resale

        doc: dict[str, Any] = {"installer_credential":
                               "absent" if self.creds.role_of(auth.INSTALLER_ACCOUNT) is None
                               else ("initial" if self.creds.must_change(auth.INSTALLER_ACCOUNT)
                                     else "changed"),
                               "accounts": len(self.db.accounts()),
                               "sessions": len(self.db.sessions()),
                               "locked_settings_drift": self.drift(),
                               "resale": resale.marker(self.state_dir)}
        try:
            from firmware.gateway.update import status as fw_status

            doc["firmware"] = fw_status(self.state_dir, self.board)
        except Exception as exc:  # the update agent is optional on this board
            doc["firmware"] = {"error": type(exc).__name__}
        return doc

    def h_status(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/status."""
        return Response(200, self.status_doc())

    def h_openapi(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /openapi.json."""
        return Response(200, openapi.load())

    def h_settings_list(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """GET /api/settings."""
        out = {}
        for name, st in self.db.settings().items():
            decl = settings.SCHEMA.get(name, {})
            out[name] = {"value": st["value"], "locked": st["locked"],
                         "type": decl.get("type", "unknown"),
                         "writable": roles.allowed(s.role, "settings.write")
                         and (not st["locked"] or roles.allowed(s.role, "settings.write-locked"))}
        return Response(200, {"settings": out, "drift": self.drift()})

    def _setting(self, name: str) -> dict[str, Any]:
        st = self.db.settings().get(name)
        if st is None or name not in settings.SCHEMA:
            raise StateError("no such setting")
        return st

    def h_setting_put(self, req: Request, s: Session, p: dict[str, str], body: Any) -> Response:
        """PUT /api/settings/{name}."""
        name = p["name"]
        if name not in settings.SCHEMA:
            return error(404, "not-found", "no such setting")
        st = self._setting(name)
        if st["locked"] and not roles.allowed(s.role, "settings.write-locked"):
            self.event("admin.setting.denied", "notice", s.account, "set", name, "refused",
                       "installer-locked setting", source=self._source(s))
            return error(403, "locked", "this setting is locked by the installer")
        value = settings.validate(name, body["value"])
        self.db.put_setting(name, value, st["locked"], self.clock(), s.account)
        if st["locked"]:
            self._record_locks()
        self.event("admin.setting.changed", "notice", s.account, "set", name, "ok",
                   source=self._source(s), locked=st["locked"])
        return Response(200, {"name": name, "value": value, "locked": st["locked"]})

    def h_setting_lock(self, req: Request, s: Session, p: dict[str, str], body: Any) -> Response:
        """POST /api/settings/{name}/lock."""
        name = p["name"]
        if name not in settings.SCHEMA:
            return error(404, "not-found", "no such setting")
        st = self._setting(name)
        self.db.put_setting(name, st["value"], body["locked"], self.clock(), s.account)
        self._record_locks()
        self.event("admin.setting.locked" if body["locked"] else "admin.setting.unlocked",
                   "notice", s.account, "lock", name, "ok")
        return Response(200, {"name": name, "locked": body["locked"]})

    def h_accounts_list(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """GET /api/accounts."""
        accts = self.db.accounts()
        if self.creds.role_of(auth.INSTALLER_ACCOUNT):
            accts.insert(0, {"name": auth.INSTALLER_ACCOUNT, "role": roles.INSTALLER,
                             "created_by": "provisioning",
                             "must_change": self.creds.must_change(auth.INSTALLER_ACCOUNT)})
        return Response(200, {"accounts": accts})

    def create_account(self, name: str, role: str, password: str, by: str) -> None:
        """Create an operator account whose credential must be changed at first use."""
        if name == auth.INSTALLER_ACCOUNT or self.db.account(name) is not None:
            raise StateError("an account with that name exists")
        self._check_new(password)
        self.db.put_account(name, role, {"hash": hash_credential(password), "must_change": True},
                            self.clock(), by)

    def h_account_create(self, req: Request, s: Session, _p: dict[str, str],
                         body: Any) -> Response:
        """POST /api/accounts."""
        self.create_account(body["name"], body["role"], body["password"], s.account)
        self.event("admin.account.created", "notice", s.account, "create-account",
                   body["name"], "ok", role=body["role"])
        return Response(200, {"name": body["name"], "role": body["role"], "must_change": True})

    def h_account_delete(self, req: Request, s: Session, p: dict[str, str], _b: Any) -> Response:
        """DELETE /api/accounts/{name}."""
        if p["name"] == auth.INSTALLER_ACCOUNT:
            return error(409, "state", "the provisioned installer account cannot be deleted")
        if not self.db.delete_account(p["name"]):
            return error(404, "not-found", "no such account")
        self.event("admin.account.deleted", "notice", s.account, "delete-account", p["name"],
                   "ok")
        return Response(204)

    def h_windows_list(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/maintenance/windows."""
        return Response(200, {"windows": self.db.open_windows(self.clock())})

    def h_window_open(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """POST /api/maintenance/windows."""
        now = self.clock()
        expires = now + 60 * body["minutes"]
        wid = self.db.open_window(s.account, now, expires)
        self.event("maintenance.window.opened", "notice", s.account, "open-window",
                   "maintenance", "ok", source="maintenance", window=wid, expires=expires)
        return Response(200, {"id": wid, "expires": expires})

    def h_windows_close(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """DELETE /api/maintenance/windows."""
        n = self.db.close_windows()
        ended = 0
        for row in self.db.sessions():
            if row["window_id"] is not None:
                self._end_session(Session(row), "window closed")
                ended += 1
        self.event("maintenance.window.closed", "notice", s.account, "close-window",
                   "maintenance", "ok", source="maintenance", windows=n, sessions=ended)
        return Response(200, {"closed": n, "sessions_ended": ended})

    def _diag_dir(self) -> Path:
        d = self.state_dir / DIAG_DIR
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d.resolve()

    def h_diagnostics_list(self, req: Request, s: Session, _p: dict[str, str],
                           _b: Any) -> Response:
        """GET /api/diagnostics."""
        names = sorted(p.name for p in self._diag_dir().iterdir()
                       if p.is_file() and not p.is_symlink())
        return Response(200, {"snapshots": names})

    def h_diagnostics_create(self, req: Request, s: Session, _p: dict[str, str],
                             _b: Any) -> Response:
        """POST /api/diagnostics."""
        name = "snapshot-%d.json" % int(self.clock() * 1000)
        doc = self.status_doc()
        (self._diag_dir() / name).write_text(json.dumps(doc, sort_keys=True, default=str))
        self.event("admin.diagnostics.created", "info", s.account, "snapshot", name, "ok",
                   source=self._source(s))
        return Response(200, {"name": name})

    def h_diagnostics_get(self, req: Request, s: Session, p: dict[str, str],
                          _b: Any) -> Response:
        """GET /api/diagnostics/{name}: the name is resolved and must stay in the folder."""
        base = self._diag_dir()
        path = (base / p["name"]).resolve()
        if path.parent != base or path.is_symlink() or not path.is_file():
            return error(404, "not-found", "no such snapshot")
        data = path.read_bytes()[:MAX_DIAG]
        return Response(200, {"name": path.name, "content": data.decode("utf-8", "replace")})

    def h_personal_get(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/owner/data."""
        return Response(200, {"data": PersonalStore(self.state_dir, self.board).read()})

    def h_personal_put(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """PUT /api/owner/data."""
        PersonalStore(self.state_dir, self.board).write(body)
        self.event("owner.data.updated", "info", s.account, "write", "personal-data", "ok",
                   fields=sorted(body))
        return Response(204)

    def h_personal_delete(self, req: Request, s: Session, _p: dict[str, str],
                          _b: Any) -> Response:
        """DELETE /api/owner/data: crypto-erase."""
        result = PersonalStore(self.state_dir, self.board).erase()
        self.event("owner.data.deleted", "notice", s.account, "delete-my-data",
                   "personal-data", "ok", key_destroyed=result["key_destroyed"],
                   data_removed=result["data_removed"])
        return Response(200, result)

    def h_transfer(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """POST /api/ownership/transfer."""
        from firmware.common.passwords import new_credential
        from firmware.gateway.owner.transfer import transfer_ownership

        new_owner = body.get("new_owner")
        if new_owner and (new_owner == auth.INSTALLER_ACCOUNT or (
                (acc := self.db.account(new_owner)) is not None and acc["role"] != roles.OWNER)):
            return error(409, "state", "an operator account with that name exists")
        summary = transfer_ownership(self.db, self.state_dir, self.board, self.clock())
        self.pepper = auth.pepper(self.state_dir, self.board)
        out: dict[str, Any] = {"summary": summary}
        if new_owner:
            secret = new_credential()
            self.create_account(new_owner, roles.OWNER, secret, s.account)
            out["new_owner"] = {"account": new_owner, "initial_credential": secret,
                                "must_change": True}
        self.event("ownership.transferred", "notice", s.account, "transfer-ownership", "owner",
                   "ok", new_owner=new_owner or "", **{k: v for k, v in summary.items()})
        resp = Response(200, out)
        resp.cookies.append(self._cookie("", 0))
        return resp

