"""Admin API probes (SR3-H-3, C6, R2-6, R3-7): authentication, CSRF, traversal, injection,
lockout, headers, roles, maintenance windows."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import PolicyError
from firmware.gateway.admin import openapi, roles
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.bind import check_bind
from firmware.gateway.admin.routes import ROUTES
from firmware.gateway.admin.web import REQUIRED_HEADERS, Response
from tests.admin.helpers import (
    MAINT_NEW,
    MAINT_PW,
    NEW_INSTALLER,
    OWNER_NEW,
    OWNER_PW,
    Client,
    World,
    body,
)

PUBLIC = {("POST", "/api/login"), ("POST", "/api/credential/initial")}


def concrete(path: str) -> str:
    return path.replace("{name}", "device_name")


def assert_headers(resp: Response) -> None:
    for h in REQUIRED_HEADERS:
        assert h in resp.headers, (h, resp.status)
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in resp.headers["Cache-Control"]


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def test_every_route_refuses_the_unauthenticated(w: World) -> None:
    c = Client(w.app)
    for r in ROUTES:
        resp = c.call(r.method, concrete(r.path), {} if r.body is not None else None)
        assert_headers(resp)
        if (r.method, r.path) in PUBLIC:
            assert resp.status == 400, (r.path, body(resp))  # nothing without a valid body
        else:
            assert resp.status == 401, (r.method, r.path, resp.status)
    # A forged or stale cookie is no better than none.
    c.token, c.csrf = "A" * 43, "B" * 43
    for r in ROUTES:
        if (r.method, r.path) not in PUBLIC:
            assert c.call(r.method, concrete(r.path)).status == 401
    assert c.call("GET", "/api/nothing-here").status == 401


def test_initial_credential_only_changes_itself(w: World) -> None:
    c = Client(w.app)
    resp = c.login("installer", w.initial)
    assert resp.status == 403 and body(resp)["error"] == "must-change"
    assert not c.token and not w.app.db.sessions()
    for r in ROUTES:
        if (r.method, r.path) not in PUBLIC:
            assert c.call(r.method, concrete(r.path)).status == 401
    # the change refuses a wrong old credential, a weak new one, then works once
    bad = c.call("POST", "/api/credential/initial",
                 {"account": "installer", "old": "WRONG-WRONG-WRONG", "new": NEW_INSTALLER})
    assert bad.status == 401
    weak = c.call("POST", "/api/credential/initial",
                  {"account": "installer", "old": w.initial, "new": "short"})
    assert weak.status == 403
    w.clock.advance(5)
    ok = c.call("POST", "/api/credential/initial",
                {"account": "installer", "old": w.initial, "new": NEW_INSTALLER})
    assert ok.status == 204
    assert c.login("installer", w.initial).status == 401
    assert c.login("installer", NEW_INSTALLER).status == 200
    assert body(c.call("GET", "/api/session"))["role"] == "installer"
    assert "admin.credential.changed" in w.kinds()


def test_operator_accounts_must_change_their_first_credential(w: World) -> None:
    inst = w.installer()
    inst.call("POST", "/api/accounts", {"name": "tanaka", "role": "owner", "password": OWNER_PW})
    c = Client(w.app)
    assert body(c.login("tanaka", OWNER_PW))["error"] == "must-change"


def test_state_changes_without_csrf_token_are_refused(w: World) -> None:
    inst = w.installer()
    changing = [r for r in ROUTES if r.state_changing and (r.method, r.path) not in PUBLIC]
    assert len(changing) >= 8
    for r in changing:
        resp = inst.call(r.method, concrete(r.path), {}, csrf=False)
        assert resp.status == 403 and body(resp)["error"] == "csrf", (r.path, body(resp))
        assert_headers(resp)
        wrong = inst.call(r.method, concrete(r.path), {},
                          headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status == 403, r.path
    evil = inst.call("PUT", "/api/settings/device_name", {"value": "x"},
                     headers={"Origin": "https://evil.example"})
    assert evil.status == 403
    site = inst.call("PUT", "/api/settings/device_name", {"value": "x"},
                     headers={"Sec-Fetch-Site": "cross-site"})
    assert site.status == 403
    assert body(inst.call("GET", "/api/settings"))["settings"]["device_name"]["value"] != "x"
    ok = inst.call("PUT", "/api/settings/device_name", {"value": "x"},
                   headers={"Origin": "https://gw.local:8443"})
    assert ok.status == 200
    login_csrf = Client(w.app).call("POST", "/api/login",
                                    {"account": "installer", "password": NEW_INSTALLER},
                                    headers={"Origin": "https://evil.example"})
    assert login_csrf.status == 403
    assert "admin.csrf" in w.kinds()


@pytest.mark.parametrize("target", [
    "/api/diagnostics/../admin.db", "/api/diagnostics/..%2fadmin.db",
    "/api/diagnostics/%2e%2e%2fadmin.db", "/api/diagnostics/%2E%2E/admin.db",
    "/api/diagnostics/..%5cadmin.db", "/api/diagnostics/%252e%252e%252fadmin.db",
    "/api/diagnostics/..", "/api/diagnostics//etc/passwd", "/api/diagnostics/%00",
    "/api/../../keys/device.kek", "/api/diagnostics/.hidden", "/api/diagnostics/a\\..\\b",
    "/api/diagnostics/%c0%ae%c0%ae%c0%afadmin.db",
])
def test_traversal_is_refused(w: World, target: str) -> None:
    inst = w.installer()
    secret = w.state / "admin" / "outside.txt"
    secret.write_text("CANARY-OUTSIDE")
    resp = inst.call("GET", target)
    assert resp.status in (400, 404), (target, resp.status)
    assert b"CANARY" not in resp.body
    assert_headers(resp)


def test_symlink_out_of_the_diagnostics_folder_is_refused(w: World) -> None:
    inst = w.installer()
    assert inst.call("POST", "/api/diagnostics").status == 200
    diag = w.state / "admin" / "diagnostics"
    (w.state / "admin" / "outside.txt").write_text("CANARY-OUTSIDE")
    os.symlink(w.state / "admin" / "outside.txt", diag / "link.json")
    resp = inst.call("GET", "/api/diagnostics/link.json")
    assert resp.status == 404 and b"CANARY" not in resp.body
    names = body(inst.call("GET", "/api/diagnostics"))["snapshots"]
    assert len(names) == 1 and names[0].startswith("snapshot-")
    got = inst.call("GET", "/api/diagnostics/" + names[0])
    assert got.status == 200 and "installer_credential" in body(got)["content"]


INJECT = ["Robert'); DROP TABLE settings;--", "<script>alert(1)</script>",
          "\"><img src=x onerror=alert(1)>", "' OR '1'='1", "{{7*7}}${7*7}",
          "&lt;b&gt;&amp;"]


def test_injection_strings_are_stored_and_echoed_safely(w: World) -> None:
    inst = w.installer()
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    assert owner.login("tanaka", OWNER_NEW).status == 200
    for s in INJECT:
        r = owner.call("PUT", "/api/settings/device_name", {"value": s})
        assert r.status == 200, body(r)
        got = owner.call("GET", "/api/settings")
        assert body(got)["settings"]["device_name"]["value"] == s
        assert b"<" not in got.body and b">" not in got.body
        assert got.headers["Content-Type"].startswith("application/json")
        r = owner.call("PUT", "/api/owner/data", {"name": s, "notes": s})
        assert r.status == 204
        assert body(owner.call("GET", "/api/owner/data"))["data"] == {"name": s, "notes": s}
    # the tables are intact and the injected text changed nothing else
    con = sqlite3.connect(w.state / "admin" / "admin.db")
    assert {r[0] for r in con.execute("SELECT name FROM sqlite_master")} >= {
        "accounts", "sessions", "settings", "throttle", "windows"}
    con.close()
    for account in ["' OR 1=1 --", "installer' --", "<script>"]:
        r = Client(w.app).login(account, "x")
        assert r.status == 400  # not a valid account name: refused before any lookup
    r = inst.call("POST", "/api/accounts", {"name": "x'; DROP TABLE accounts;--",
                                            "role": "owner", "password": OWNER_PW})
    assert r.status == 400


def test_lockout_after_repeated_failures(w: World) -> None:
    w.installer()
    c = Client(w.app, addr="198.51.100.7")
    for i in range(5):
        r = c.login("installer", "wrong-guess-%d" % i)
        assert r.status == 401
        w.clock.advance(61)
    r = c.login("installer", NEW_INSTALLER)
    assert r.status == 429 and body(r)["error"] == "throttled"
    assert "admin.lockout" in w.kinds()
    # a restart does not lift it
    app2 = AdminApp(w.state, None, clock=w.clock)
    assert Client(app2, addr="198.51.100.7").login("installer", NEW_INSTALLER).status == 429
    app2.close()
    w.clock.advance(16 * 60)
    assert c.login("installer", NEW_INSTALLER).status == 200


def test_failures_from_many_sources_do_not_lock_out_the_right_credential(w: World) -> None:
    w.installer()
    codes = []
    for i in range(25):  # a new address every guess, no waiting: the probe's attack
        codes.append(Client(w.app, addr="198.51.100.%d" % (i + 1))
                     .login("installer", "guess-%d" % i).status)
    assert set(codes) == {401}  # each guess was evaluated, counted and failed
    assert [e.result for e in w.events if e.kind == "admin.login"][-25:] == ["fail"] * 25
    alerts = [e for e in w.events if e.kind == "admin.lockout"]
    assert [(e.severity, e.result) for e in alerts] == [("alert", "under-attack")], alerts
    # the right credential from an address that never failed still logs in
    assert Client(w.app, addr="198.51.100.200").login("installer", NEW_INSTALLER).status == 200
    # while under attack, a source that failed once waits before its next guess
    r = Client(w.app, addr="198.51.100.25").login("installer", "guess-again")
    assert r.status == 429 and body(r)["retry_after"] > 0


def test_one_source_brute_forcing_is_still_locked(w: World) -> None:
    w.installer()
    c = Client(w.app, addr="198.51.100.7")
    for i in range(5):
        assert c.login("installer", "wrong-guess-%d" % i).status == 401
        w.clock.advance(61)
    assert c.login("installer", NEW_INSTALLER).status == 429
    locks = [e for e in w.events if e.kind == "admin.lockout"]
    assert locks and all(e.severity == "warning" for e in locks), locks
    assert Client(w.app, addr="198.51.100.8").login("installer", NEW_INSTALLER).status == 200


def test_back_off_grows_exponentially(w: World) -> None:
    c = Client(w.app, addr="198.51.100.30")
    waits = []
    for _ in range(4):
        assert c.login("nobody", "wrong").status == 401
        r = c.login("nobody", "wrong")
        waits.append(body(r).get("retry_after", 0) if r.status == 429 else 0)
        w.clock.advance(3600)
    assert waits[0] == 0 and waits[1] < waits[2] < waits[3]


def test_address_lockout_across_accounts(w: World) -> None:
    w.installer()
    c = Client(w.app, addr="203.0.113.5")
    for i in range(20):
        assert c.login("user%d" % i, "wrong").status == 401
        w.clock.advance(61)
    assert c.login("installer", NEW_INSTALLER).status == 429
    assert Client(w.app, addr="203.0.113.6").login("installer", NEW_INSTALLER).status == 200


def test_security_headers_on_every_response(w: World) -> None:
    c = Client(w.app)
    seen = [c.call("GET", "/"), c.call("GET", "/api/../x"), c.call("PATCH", "/api/settings"),
            c.call("POST", "/api/login", raw=b"{not json"),
            c.call("POST", "/api/login", raw=b"x" * 20000)]
    inst = w.installer()
    seen += [inst.call(r.method, concrete(r.path)) for r in ROUTES
             if r.method == "GET" or r.body is not None]
    seen += [inst.call("GET", "/api/nothing"), inst.call("PUT", "/api/settings/nope",
                                                          {"value": 1})]
    assert {r.status for r in seen} >= {200, 400, 401, 404, 405, 413}
    for r in seen:
        assert_headers(r)


def test_owner_cannot_change_installer_locked_settings(w: World) -> None:
    inst = w.installer()
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    assert owner.login("tanaka", OWNER_NEW).status == 200
    listing = body(owner.call("GET", "/api/settings"))["settings"]
    assert listing["zigbee_channel"]["locked"] and not listing["zigbee_channel"]["writable"]
    r = owner.call("PUT", "/api/settings/zigbee_channel", {"value": 20})
    assert r.status == 403 and body(r)["error"] == "locked"
    assert owner.call("POST", "/api/settings/device_name/lock", {"locked": False}).status == 403
    assert owner.call("PUT", "/api/settings/led_brightness", {"value": 10}).status == 200
    assert owner.call("PUT", "/api/settings/led_brightness", {"value": 1000}).status == 400
    assert inst.call("PUT", "/api/settings/zigbee_channel", {"value": 20}).status == 200
    assert inst.call("POST", "/api/settings/led_brightness/lock", {"locked": True}).status == 200
    assert owner.call("PUT", "/api/settings/led_brightness", {"value": 11}).status == 403
    assert w.app.drift() == []
    assert "admin.setting.denied" in w.kinds()
    # an edit behind the API's back is drift
    con = sqlite3.connect(w.state / "admin" / "admin.db")
    con.execute("UPDATE settings SET value = '25' WHERE name = 'zigbee_channel'")
    con.commit()
    con.close()
    assert any("zigbee_channel" in d for d in w.app.drift())


def test_roles_are_least_privilege(w: World) -> None:
    assert not roles.allowed("owner", "accounts.manage")
    assert not roles.allowed("owner", "settings.write-locked")
    assert not roles.allowed("maintenance", "settings.write")
    assert not roles.allowed("maintenance", "personal.read")
    assert not roles.allowed("installer", "personal.read")
    assert not roles.allowed("root", "status.read")
    assert not roles.allowed("owner", "no.such.permission")
    for r in ROUTES:
        assert r.permission is None or any(r.permission in p
                                           for p in roles.PERMISSIONS.values()), r.path
    inst = w.installer()
    assert inst.call("GET", "/api/owner/data").status == 403
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    owner.login("tanaka", OWNER_NEW)
    assert owner.call("GET", "/api/accounts").status == 403
    assert owner.call("POST", "/api/accounts", {"name": "x1", "role": "installer",
                                                "password": OWNER_PW}).status == 403
    assert "admin.denied" in w.kinds()


def test_maintenance_session_is_time_boxed_and_expires_by_itself(w: World) -> None:
    inst = w.installer()
    maint = w.account(inst, "svc-kato", "maintenance", MAINT_PW, MAINT_NEW)
    r = maint.login("svc-kato", MAINT_NEW)
    assert r.status == 403 and body(r)["error"] == "no-window"
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    owner.login("tanaka", OWNER_NEW)
    assert owner.call("POST", "/api/maintenance/windows", {"minutes": 30}).status == 200
    assert maint.login("svc-kato", MAINT_NEW).status == 200
    assert maint.call("GET", "/api/status").status == 200
    assert maint.call("PUT", "/api/settings/device_name", {"value": "m"}).status == 403
    assert maint.call("POST", "/api/diagnostics").status == 200
    w.clock.advance(29 * 60)
    assert maint.call("GET", "/api/status").status == 200
    w.clock.advance(2 * 60)
    assert w.app.reap() >= 1  # nobody asked: it ended by itself (idle ones too)
    ended = [e for e in w.events if e.kind == "maintenance.session.expired"]
    assert ended and ended[0].source == "maintenance" and ended[0].principal == "svc-kato"
    assert maint.call("GET", "/api/status").status == 401
    assert maint.login("svc-kato", MAINT_NEW).status == 403  # window over
    sources = {e.source for e in w.events if e.kind.startswith("maintenance.")}
    assert sources == {"maintenance"}


def test_closing_the_window_ends_maintenance_sessions(w: World) -> None:
    inst = w.installer()
    maint = w.account(inst, "svc-kato", "maintenance", MAINT_PW, MAINT_NEW)
    inst.call("POST", "/api/maintenance/windows", {"minutes": 60})
    assert maint.login("svc-kato", MAINT_NEW).status == 200
    assert body(inst.call("DELETE", "/api/maintenance/windows"))["sessions_ended"] == 1
    assert maint.call("GET", "/api/status").status == 401


def test_every_security_event_is_recorded(w: World) -> None:
    inst = w.installer()
    Client(w.app).login("installer", "nope-nope-nope")
    inst.call("PUT", "/api/settings/device_name", {"value": "n"})
    kinds = set(w.kinds())
    assert {"admin.login", "admin.credential.changed", "admin.setting.changed"} <= kinds
    assert all(e.source in ("local-admin", "maintenance") for e in w.events)
    text = repr([e.to_dict() for e in w.events])
    assert NEW_INSTALLER not in text and w.initial not in text


def test_openapi_file_matches_the_route_table(w: World) -> None:
    assert openapi.load() == openapi.build(), "run: python -m firmware.gateway.admin.openapi"
    doc = openapi.load()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == {(r.method, r.path) for r in ROUTES}
    inst = w.installer()
    assert body(inst.call("GET", "/openapi.json"))["openapi"].startswith("3.")


def test_bind_is_lan_only() -> None:
    sim = load_board("sim")
    assert check_bind("127.0.0.1", sim) == "127.0.0.1"
    for host in ("0.0.0.0", "::"):
        with pytest.raises(PolicyError):
            check_bind(host, sim)
    wan_lo = sim.with_changes(network=[{"name": "lo", "role": "wan", "kind": "loopback"},
                                       {"name": "mamori-nolan0", "role": "lan", "kind": "eth"}])
    with pytest.raises(PolicyError, match="WAN"):
        check_bind("127.0.0.1", wan_lo)
    with pytest.raises(PolicyError, match="not an address of a LAN"):
        check_bind("192.0.2.1", sim)
