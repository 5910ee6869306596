"""The admin self-test checks pass on a hardened gateway and fail when a control is broken."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from firmware.gateway.admin import app as app_mod
from firmware.gateway.admin import auth, roles, web
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.selftest.runner import run_checks
from tests.admin.helpers import World

TODAY = __import__("datetime").date(2025, 6, 1)


def run(state: Path, check_id: str) -> tuple[str, list[str]]:
    res = [r for r in run_checks(state, 3, "sim", check_id, today=TODAY)
           if r.check_id == check_id]
    assert len(res) == 1
    return res[0].verdict, res[0].evidence


@pytest.fixture
def w(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.installer()  # first-use change done
    return world


def test_web_hardening_passes(w: World) -> None:
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "pass", ev


def test_web_hardening_fails_without_csrf(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_mod.AdminApp, "_csrf_ok", lambda self, req, sess: True)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("without CSRF token: 200" in e for e in ev), ev


def test_web_hardening_fails_without_a_header(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = dict(web.SECURITY_HEADERS)
    del headers["X-Frame-Options"]
    monkeypatch.setattr(web, "SECURITY_HEADERS", headers)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("missing X-Frame-Options" in e for e in ev), ev


def test_web_hardening_fails_without_lockout(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth.Throttle, "blocked", lambda self, a, addr, now: None)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("lockout missing" in e for e in ev), ev


def test_web_hardening_fails_on_traversal(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import unquote

    def serve(self: app_mod.AdminApp, req: web.Request, s: object, p: dict[str, str],
              b: object) -> web.Response:
        path = self.state_dir / "admin" / "diagnostics" / unquote_all(req.target)
        return web.Response(200, raw=path.resolve().read_bytes()[:64])

    def unquote_all(target: str) -> str:
        return unquote(target.split("/api/diagnostics/", 1)[1])

    monkeypatch.setattr(app_mod, "split_path",
                        lambda t: unquote(t.split("?")[0])[1:].split("/", 2))
    monkeypatch.setattr(app_mod, "valid_segment", lambda v: True)
    monkeypatch.setattr(app_mod.AdminApp, "h_diagnostics_get", serve)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("path traversal: served" in e for e in ev), ev


def test_web_hardening_fails_when_routes_are_open(w: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = app_mod.AdminApp._session

    def anyone(self: app_mod.AdminApp, req: web.Request) -> object:
        return real(self, req) or app_mod.Session({
            "token_hash": "x", "account": "installer", "role": "installer",
            "expires": 1e12, "csrf_hash": "x", "window_id": None})

    monkeypatch.setattr(app_mod.AdminApp, "_session", anyone)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("unauthenticated access: allowed" in e for e in ev), ev


def test_web_hardening_fails_when_initial_credential_opens(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.common.passwords import AdminCredential, verify_hash

    def lax(self: AdminCredential, secret: str) -> None:
        if not verify_hash(secret, self.record["hash"]):
            raise app_mod.AuthError("wrong")

    monkeypatch.setattr(AdminCredential, "authenticate", lax)
    verdict, ev = run(w.state, "admin.web-hardening")
    assert verdict == "fail" and any("unchanged initial credential: login answered 200" in e
                                     for e in ev), ev


def test_locked_settings_pass_then_drift_fails(w: World) -> None:
    assert run(w.state, "admin.locked-settings")[0] == "pass"
    con = sqlite3.connect(w.state / "admin" / "admin.db")
    con.execute("UPDATE settings SET value = 'false' WHERE name = 'alarm_dispatch'")
    con.commit()
    con.close()
    verdict, ev = run(w.state, "admin.locked-settings")
    assert verdict == "fail" and any("alarm_dispatch" in e for e in ev), ev


def test_locked_settings_fail_when_owner_may_write_them(
        w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    perms = dict(roles.PERMISSIONS)
    perms[roles.OWNER] = perms[roles.OWNER] | {"settings.write-locked"}
    monkeypatch.setattr(roles, "PERMISSIONS", perms)
    verdict, ev = run(w.state, "admin.locked-settings")
    assert verdict == "fail" and any("owner role may write" in e for e in ev), ev


def test_locked_settings_fail_on_forged_manifest(w: World) -> None:
    path = w.state / "admin" / "locked.json"
    doc = json.loads(path.read_text())
    doc["locked"]["zigbee_channel"] = 26
    path.write_text(json.dumps(doc))
    verdict, ev = run(w.state, "admin.locked-settings")
    assert verdict == "fail" and any("MAC" in e for e in ev), ev


def test_initial_credential_check(tmp_path: Path) -> None:
    world = World(tmp_path)
    verdict, ev = run(world.state, "admin.initial-credential")
    assert verdict == "fail" and "not been changed" in ev[0]
    world.installer()
    assert run(world.state, "admin.initial-credential")[0] == "pass"
    rec = json.loads(KeyStore(world.state).get(install.ADMIN))
    assert rec["must_change"] is False
