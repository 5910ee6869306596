"""A gateway state dir with a provisioned installer credential, and a client for the admin app."""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any

from firmware.common.passwords import hash_credential, new_credential
from firmware.core.events import Event
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.web import COOKIE, Request, Response
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore
from tests.core.portable import FakeClock

NEW_INSTALLER = "installer-Secret-2025!"
OWNER_PW = "owner-Initial-0001"
OWNER_NEW = "owner-Household-7731"
MAINT_PW = "maint-Initial-0001"
MAINT_NEW = "maint-Engineer-4412"


def provision(state: Path) -> str:
    """Put a unique initial installer credential (must change) in the key store, as install does."""
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    initial = new_credential()
    KeyStore(state).put(install.ADMIN, json.dumps(
        {"hash": hash_credential(initial), "must_change": True}).encode(),
        "local admin credential (scrypt hash)", "scrypt N=16384 r=8 p=1", 256,
        "generated at provisioning, unique per gateway", 365)
    return initial


class Client:
    """Keeps a session cookie and CSRF token, like a browser plus the page's script."""

    def __init__(self, app: AdminApp, addr: str = "192.0.2.10") -> None:
        self.app = app
        self.addr = addr
        self.token = ""
        self.csrf = ""

    def call(self, method: str, path: str, body: Any = None, csrf: bool = True,
             headers: dict[str, str] | None = None, raw: bytes | None = None) -> Response:
        """One request through the app."""
        h = {"Host": "gw.local:8443"}
        if body is not None or raw is not None:
            h["Content-Type"] = "application/json"
        if self.token:
            h["Cookie"] = "%s=%s" % (COOKIE, self.token)
        if csrf and self.csrf:
            h["X-CSRF-Token"] = self.csrf
        h.update(headers or {})
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        resp = self.app.handle(Request(method, path, h, data, self.addr))
        for c in resp.cookies:
            value = c.split(";", 1)[0].split("=", 1)[1]
            self.token = value
        return resp

    def login(self, account: str, password: str) -> Response:
        """POST /api/login; keeps the session on success."""
        resp = self.call("POST", "/api/login", {"account": account, "password": password})
        if resp.status == 200:
            self.csrf = json.loads(resp.body)["csrf_token"]
        return resp


def body(resp: Response) -> Any:
    """Decoded JSON body."""
    return json.loads(resp.body) if resp.body else None


class World:
    """A provisioned state dir, an app on a fake clock, the events it emitted."""

    def __init__(self, root: Path) -> None:
        self.state = root / "state"
        self.initial = provision(self.state)
        self.clock = FakeClock(1_700_000_000.0)
        self.events: list[Event] = []
        self.app = AdminApp(self.state, None, emit=self.events.append, clock=self.clock)
        self.app.hosts = frozenset({"gw.local:8443"})  # the Host the Client sends

    def kinds(self) -> list[str]:
        """Kinds of the events so far."""
        return [e.kind for e in self.events]

    def installer(self) -> Client:
        """A logged-in installer (first-use change done)."""
        c = Client(self.app)
        if self.app.creds.must_change("installer"):
            r = c.call("POST", "/api/credential/initial",
                       {"account": "installer", "old": self.initial, "new": NEW_INSTALLER})
            assert r.status == 204, body(r)
        assert c.login("installer", NEW_INSTALLER).status == 200
        return c

    def account(self, inst: Client, name: str, role: str, pw: str, new: str) -> Client:
        """Create an account as the installer, change its initial credential, log it in."""
        r = inst.call("POST", "/api/accounts", {"name": name, "role": role, "password": pw})
        assert r.status == 200, body(r)
        c = Client(self.app, addr="192.0.2.20")
        r = c.call("POST", "/api/credential/initial", {"account": name, "old": pw, "new": new})
        assert r.status == 204, body(r)
        return c


def https(port: int, cafile: Path, method: str, path: str, data: object = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the admin API over real HTTPS (its certificate pinned by CAFILE)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    h = dict(headers or {})
    raw = None
    if data is not None:
        raw = json.dumps(data).encode()
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=raw, headers=h)
    resp = conn.getresponse()
    out = resp.read()
    hdrs = dict(resp.getheaders())
    conn.close()
    return resp.status, hdrs, out


def https_login(port: int, cafile: Path, account: str, password: str) -> dict[str, str]:
    """Log in over HTTPS; the headers a browser then sends (cookie, CSRF token)."""
    st, hdrs, raw = https(port, cafile, "POST", "/api/login",
                          {"account": account, "password": password})
    assert st == 200, raw
    return {"Cookie": hdrs["Set-Cookie"].split(";")[0],
            "X-CSRF-Token": json.loads(raw)["csrf_token"]}
