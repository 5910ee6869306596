"""Local admin interface: loopback probes (SR3-H-3), locked-setting drift (R2-6), C6 credential."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any

from firmware.common.passwords import hash_credential, new_credential
from firmware.gateway.admin import auth, roles
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.routes import ROUTES
from firmware.gateway.admin.server import AdminServer
from firmware.gateway.admin.tlsctx import SELF_CERT, server_context
from firmware.gateway.admin.web import COOKIE, REQUIRED_HEADERS
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed

NEW = "selftest-Probe-Credential-42"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class _Probe:
    """An HTTPS client for the scratch instance that records every response."""

    def __init__(self, port: int, cafile: Path) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.responses: list[tuple[str, int, dict[str, str]]] = []

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=10)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            hdrs = {k: v for k, v in resp.getheaders()}
            cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
            if cookies:
                hdrs["Set-Cookie"] = cookies[0]
        finally:
            conn.close()
        self.responses.append(("%s %s" % (method, path), resp.status, hdrs))
        return resp.status, hdrs, raw


def _probe(tmp: Path) -> tuple[list[str], list[str]]:
    """Run every probe against a scratch instance; (evidence, failures)."""
    state = tmp / "state"
    state.mkdir(mode=0o700)
    initial = new_credential()
    KeyStore(state).put(install.ADMIN, json.dumps({"hash": hash_credential(initial),
                                                   "must_change": True}).encode(),
                        "probe admin credential", "scrypt", 256, "self-test probe", 1)
    clock = _Clock()
    app = AdminApp(state, None, clock=clock)
    ctx, _ = server_context(state)
    server = AdminServer(("127.0.0.1", 0), app, ctx)
    server.start()
    ok: list[str] = []
    bad: list[str] = []
    try:
        p = _Probe(server.port, state / SELF_CERT)
        # 1. unauthenticated access to every protected route
        leaks = [r.method + " " + r.path for r in ROUTES if r.permission is not None and
                 p.call(r.method, r.path.replace("{name}", "device_name"))[0] != 401]
        (bad if leaks else ok).append("unauthenticated access: " + (
            "allowed on " + ", ".join(leaks) if leaks else "refused on every route"))
        # 2. the unchanged initial credential opens nothing
        st, _, raw = p.call("POST", "/api/login", {"account": "installer", "password": initial})
        (ok if st == 403 and b"must-change" in raw else bad).append(
            "unchanged initial credential: login answered %d" % st)
        st, _, _ = p.call("POST", "/api/credential/initial",
                          {"account": "installer", "old": initial, "new": NEW})
        if st != 204:
            bad.append("first-use credential change failed (%d)" % st)
            return ok, bad
        st, hdrs, raw = p.call("POST", "/api/login", {"account": "installer", "password": NEW})
        if st != 200:
            bad.append("login with the changed credential failed (%d)" % st)
            return ok, bad
        cookie = hdrs.get("Set-Cookie", "")
        flags = [f for f in ("Secure", "HttpOnly", "SameSite=Strict") if f not in cookie]
        (bad if flags else ok).append("session cookie flags: " + (
            "missing " + ", ".join(flags) if flags else "Secure; HttpOnly; SameSite=Strict"))
        auth_h = {"Cookie": "%s=%s" % (COOKIE, cookie.split(";")[0].split("=", 1)[1])}
        csrf = json.loads(raw)["csrf_token"]
        # 3. traversal
        (state / "admin" / "diagnostics").mkdir(parents=True, exist_ok=True)
        hits = []
        for t in ("/api/diagnostics/..%2fadmin.db", "/api/diagnostics/%2e%2e%2f%2e%2e%2fkeys",
                  "/api/diagnostics/../admin.db", "/api/diagnostics/..%5cadmin.db"):
            st, _, raw = p.call("GET", t, headers=auth_h)
            if st == 200 or b"SQLite" in raw:
                hits.append(t)
        (bad if hits else ok).append("path traversal: " + (
            "served " + ", ".join(hits) if hits else "refused (4 encodings)"))
        # 4. state change without the CSRF token
        st, _, _ = p.call("PUT", "/api/settings/device_name", {"value": "csrf-probe"},
                          headers=auth_h)
        (ok if st == 403 else bad).append("state change without CSRF token: %d" % st)
        st, _, _ = p.call("PUT", "/api/settings/device_name", {"value": "csrf-probe"},
                          headers={**auth_h, "X-CSRF-Token": csrf,
                                   "Origin": "https://attacker.invalid"})
        (ok if st == 403 else bad).append("cross-origin state change: %d" % st)
        # 5. lockout
        for i in range(auth.PAIR_LOCK_AFTER + 1):
            p.call("POST", "/api/login", {"account": "installer", "password": "wrong-%d" % i})
            clock.now += 120
        st, _, _ = p.call("POST", "/api/login", {"account": "installer", "password": NEW})
        (ok if st == 429 else bad).append(
            "right credential after %d failures: %d (lockout %s)"
            % (auth.PAIR_LOCK_AFTER + 1, st, "held" if st == 429 else "missing"))
        # 6. header set on every response seen, errors included
        missing = sorted({"%s on %s (%d)" % (h, what, code) for what, code, hdrs in p.responses
                          for h in REQUIRED_HEADERS if h not in hdrs})
        (bad if missing else ok).append("security headers: " + (
            "missing " + "; ".join(missing[:5]) if missing else
            "all present on %d responses" % len(p.responses)))
    finally:
        server.shutdown()
        server.server_close()
        app.close()
    return ok, bad


@check("admin.web-hardening", "Admin API refuses unauthenticated, traversal, CSRF-less and "
       "brute-force requests, and sends the security headers (loopback probes)",
       requirements=["SR3-H-3", "C6", "UK13"],
       remediation="serve the admin interface only through firmware.gateway.admin (session "
                   "auth on every route, CSRF token, confined paths, lockout, headers)")
def web_hardening(ctx: CheckContext) -> Outcome:
    """Start a scratch instance on loopback HTTPS and probe it."""
    try:
        ok, bad = _probe(ctx.tempdir())
    except OSError as exc:
        return inconclusive("could not run the loopback probe: %s" % exc)
    return failed(*bad, *ok) if bad else passed(*ok)


@check("admin.locked-settings", "Installer-locked settings are read-only to the owner and "
       "have not drifted", requirements=["R2-6"],
       remediation="change locked settings only through the admin API as the installer; "
                   "re-lock them (POST /api/settings/NAME/lock) to record the intended value")
def locked_settings(ctx: CheckContext) -> Outcome:
    """Owner role cannot write locked settings; the locked values match their MAC'd record."""
    bad = []
    if roles.allowed(roles.OWNER, "settings.write-locked"):
        bad.append("the owner role may write installer-locked settings")
    live = ctx.live_state_dir / "admin" / "admin.db"
    if not live.is_file():
        if bad:
            return failed(*bad)
        return passed("owner role cannot write installer-locked settings",
                      "admin interface not started yet: defaults and their locks are recorded "
                      "at first start")
    app = AdminApp(ctx.scratch(), None)
    try:
        locked = app.locked_settings()
        bad += app.drift()
    finally:
        app.close()
    if bad:
        return failed(*bad)
    return passed("owner role cannot write installer-locked settings",
                  "%d locked settings match their recorded values: %s"
                  % (len(locked), ", ".join(sorted(locked)) or "none"))


@check("admin.initial-credential", "The unique initial admin credential has been changed",
       requirements=["C6", "UK1"],
       remediation="change it: mamori-gateway admin set-password, or POST "
                   "/api/credential/initial")
def initial_credential(ctx: CheckContext) -> Outcome:
    """The provisioned installer credential no longer carries must_change."""
    ks = KeyStore(ctx.scratch())
    if not ks.has(install.ADMIN):
        return passed("no admin credential is installed yet: no account can log in "
                      "(no default credential exists)")
    try:
        rec = json.loads(ks.get(install.ADMIN))
    except Exception as exc:
        return failed("the admin credential record cannot be read (%s)" % type(exc).__name__)
    if rec.get("must_change", True):
        return failed("the initial installer credential has not been changed yet")
    if not str(rec.get("hash", "")).startswith("scrypt$"):
        return failed("the admin credential is not stored as a scrypt hash")
    return passed("the installer credential was changed from its initial value (scrypt hash)")
