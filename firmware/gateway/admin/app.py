"""The admin API application (transport-free): authentication, authorisation, CSRF, dispatch.

``AdminApp.handle(Request) -> Response`` is what the HTTPS server calls for each request; tests
and the self-test call it directly or over loopback HTTPS. Every response carries the security
headers (see ``web.SECURITY_HEADERS``), errors included. The routes live one module per resource
in ``admin/resources/`` (the route table: ``admin/routes.py``); this module assembles them and
runs every request through the same checks before its handler.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from firmware.common.passwords import MustChangeCredential
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
from firmware.gateway.admin import auth, roles, schema
from firmware.gateway.admin.core import IDLE_S, Session
from firmware.gateway.admin.resources.accounts import AccountRoutes
from firmware.gateway.admin.resources.commissioning import CommissioningRoutes
from firmware.gateway.admin.resources.devices import DeviceRoutes
from firmware.gateway.admin.resources.diagnostics import DiagnosticsRoutes
from firmware.gateway.admin.resources.maintenance import MaintenanceRoutes
from firmware.gateway.admin.resources.owner import OwnerRoutes
from firmware.gateway.admin.resources.sessions import SessionRoutes
from firmware.gateway.admin.resources.settings import SettingsRoutes
from firmware.gateway.admin.resources.status import StatusRoutes
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

log = logging.getLogger("mamori.admin")

BODY_DEPTH = 8  # request bodies are flat objects (personal data: one level more)


class AdminApp(SessionRoutes, StatusRoutes, SettingsRoutes, AccountRoutes, MaintenanceRoutes,
               DiagnosticsRoutes, OwnerRoutes, DeviceRoutes, CommissioningRoutes):
    """The local admin Web API over one gateway state directory (``AdminCore`` holds the state;
    each base class brings one resource's ``h_*`` handlers)."""

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
        if self.hosts is not None and req.header("host").lower() not in self.hosts:
            # DNS rebinding: a foreign name resolving to this address is not this site.
            self.refused("admin.host", "Host header names another site", req.addr)
            return error(421, "host", "this gateway does not serve that host name")
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
            self.refused("admin.cross-origin", "foreign Origin or cross-site fetch", req.addr)
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
