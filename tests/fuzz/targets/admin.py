"""Local admin API: the JSON bodies and path parameters a browser (or anyone on the LAN) sends.

The first input byte picks a route that takes a body, the second a path parameter, the rest is
the body; the request goes through the real ``AdminApp`` with a logged-in installer's cookie and
CSRF token (so the handlers behind the checks run too). Property: the project's own refusals
(4xx) are fine; an exception the app would turn into "500 internal error" is an escape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.auth import LOCKOUT_S
from firmware.gateway.admin.routes import ROUTES
from firmware.gateway.admin.web import COOKIE, Request
from tests.admin.helpers import NEW_INSTALLER, Client, provision
from tests.core.portable import FakeClock
from tests.fuzz import world

MAX_LEN = 8192
FUZZER_ADDR = "192.0.2.66"
WITH_BODY = [r for r in ROUTES if r.body is not None]
PARAMS = ("device_name", "led_brightness", "timezone", "zigbee_channel", "notify_language",
          "alarm_dispatch", "nope", "x" * 80, "..", "a.b")
BODIES = [{"account": "installer", "password": "wrong-one-1234"}, {"value": 42},
          {"value": "Asia/Tokyo"}, {"locked": True},
          {"name": "fz-owner", "role": "owner", "password": "fz-Owner-Initial-1"},
          {"minutes": 30}, {"name": "A", "email": "a@example.org", "notes": "n"},
          {"new_owner": "fz-owner"}, {"old": "a-b-c-d-e-f-g-h", "new": "h-g-f-e-d-c-b-a-9"}]


def seeds(workdir: Path) -> list[bytes]:
    """Each route with each valid-looking body the UI sends."""
    out = []
    for i, _r in enumerate(WITH_BODY):
        for j, b in enumerate(BODIES):
            out.append(bytes([i, j % len(PARAMS)]) + json.dumps(b).encode())
    return out


def setup(workdir: Path) -> Callable[[bytes], None]:
    """A provisioned admin app on a fake clock with a logged-in installer."""
    world.quiet()
    state = Path(workdir) / "admin-state"
    initial = provision(state)
    clock = FakeClock(1_700_000_000.0)
    app = AdminApp(state, None, emit=lambda e: None, clock=clock)
    client = Client(app)
    client.call("POST", "/api/credential/initial",
                {"account": "installer", "old": initial, "new": NEW_INSTALLER})

    def login() -> None:
        for _ in range(3):
            client.token = client.csrf = ""
            if client.login("installer", NEW_INSTALLER).status == 200:
                return
            clock.advance(LOCKOUT_S + 60)  # fuzzed logins locked the account out: wait it out
        raise AssertionError("the installer cannot log in any more")

    login()

    def one(data: bytes) -> None:
        if len(data) < 2:
            return
        route = WITH_BODY[data[0] % len(WITH_BODY)]
        param = PARAMS[data[1] % len(PARAMS)]
        path = route.path.replace("{name}", param)
        headers = {"Host": "gw.local:8443", "Content-Type": "application/json",
                   "Cookie": "%s=%s" % (COOKIE, client.token), "X-CSRF-Token": client.csrf}
        req = Request(route.method, path, headers, data[2:], FUZZER_ADDR)
        with app.lock:
            resp = app._handle(req)  # not handle(): its catch-all would hide an escape
        if resp.status >= 500:
            raise AssertionError("status %d for %s %s" % (resp.status, route.method, path))
        if app._session(Request("GET", "/api/session", headers, b"", FUZZER_ADDR)) is None:
            login()  # e.g. the input changed the installer's own credential back and forth
    return one
