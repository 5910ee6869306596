"""Delete my data (crypto-erase), ownership transfer, resale reset (R2-4, R2-5, R2-9, C7)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import PolicyError, StateError
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.personal import DATA_FILE, DATA_KEY, PersonalStore
from firmware.gateway.admin.server import AdminServer
from firmware.gateway.admin.tlsctx import SELF_CERT, server_context
from firmware.gateway.admin.web import REQUIRED_HEADERS
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.gateway import LOCK_FILE
from firmware.gateway.runtime.resalemarker import clear_marker, resale_pending
from tests.admin.helpers import (
    NEW_INSTALLER,
    OWNER_NEW,
    OWNER_PW,
    Client,
    World,
    body,
    https,
)

CANARIES = {"name": "CANARY-NAME-b7f1", "email": "canary-c41e@example.jp",
            "phone": "CANARY-PHONE-0901", "address": "CANARY-ADDR-Setagaya",
            "notes": "CANARY-NOTES-93aa"}
ROOT = Path(__file__).resolve().parents[2]


def test_delete_my_data_is_a_crypto_erase(tmp_path: Path) -> None:
    w = World(tmp_path)
    inst = w.installer()
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    owner.login("tanaka", OWNER_NEW)
    assert owner.call("PUT", "/api/owner/data", CANARIES).status == 204
    blob = (w.state / DATA_FILE).read_bytes()
    assert b"CANARY" not in blob  # encrypted at rest
    key = KeyStore(w.state).get(DATA_KEY)
    r = owner.call("DELETE", "/api/owner/data")
    assert r.status == 200 and body(r) == {"key_destroyed": True, "data_removed": True}
    assert not (w.state / DATA_FILE).exists() and not KeyStore(w.state).has(DATA_KEY)
    assert body(owner.call("GET", "/api/owner/data"))["data"] == {}
    assert "owner.data.deleted" in w.kinds()
    # even a copy of the old ciphertext is useless now: its key is gone
    assert key not in b"".join(p.read_bytes() for p in w.state.rglob("*") if p.is_file())


def test_tampered_personal_data_is_detected(tmp_path: Path) -> None:
    w = World(tmp_path)
    store = PersonalStore(w.state)
    store.write({"name": "x"})
    p = w.state / DATA_FILE
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 1
    p.write_bytes(bytes(raw))
    from firmware.core.errors import IntegrityError
    with pytest.raises(IntegrityError):
        store.read()


def test_ownership_transfer_revokes_everything(tmp_path: Path) -> None:
    w = World(tmp_path)
    inst = w.installer()
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    owner.login("tanaka", OWNER_NEW)
    owner.call("PUT", "/api/owner/data", CANARIES)
    old_pepper = KeyStore(w.state).get("admin-session-pepper")
    old_mac = KeyStore(w.state).get("admin-settings-mac")
    r = inst.call("POST", "/api/ownership/transfer", {"new_owner": "suzuki"})
    assert r.status == 200, body(r)
    out = body(r)
    assert out["summary"]["owner_accounts_removed"] == 1
    assert out["summary"]["sessions_revoked"] >= 1  # the owner's went with the account
    assert out["new_owner"]["must_change"] is True
    # every old token and the old owner's credential fail
    assert owner.call("GET", "/api/owner/data").status == 401
    assert inst.call("GET", "/api/status").status == 401
    assert Client(w.app).login("tanaka", OWNER_NEW).status == 401
    assert KeyStore(w.state).get("admin-session-pepper") != old_pepper
    assert KeyStore(w.state).get("admin-settings-mac") != old_mac
    assert not (w.state / DATA_FILE).exists()
    assert w.app.drift() == []
    # the new owner starts with a one-time credential
    new = Client(w.app)
    assert body(new.login("suzuki", out["new_owner"]["initial_credential"]))["error"] == \
        "must-change"
    ev = [e for e in w.events if e.kind == "ownership.transferred"]
    assert ev and out["new_owner"]["initial_credential"] not in repr(ev[0].to_dict())


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_resale_reset_leaves_nothing_but_the_firmware(tmp_path: Path) -> None:
    board = load_board("sim")
    w = World(tmp_path)
    state = w.state
    # installed firmware: slots + boot selector + update trust state
    for slot, version in (("a", "1.4.2"), ("b", "1.4.1")):
        d = state / "slots" / slot
        d.mkdir(parents=True)
        (d / "slot.json").write_text(json.dumps({"version": version, "board": "sim"}))
        (d / "firmware.bin").write_bytes(os.urandom(4096))
    (state / "update").mkdir()
    (state / "update" / "boot.json").write_text(json.dumps({"booted": "a"}))
    (state / "update" / "floors.json").write_text(json.dumps({"version": "1.4.2"}))
    (state / "update" / "staging").mkdir()
    (state / "update" / "staging" / "bundle.part").write_bytes(b"partial")
    firmware_before = _tree(state / "slots") | {"boot": (state / "update/boot.json").read_text()}
    # canaries through the real API over HTTPS
    ctx, _ = server_context(state)
    server = AdminServer(("127.0.0.1", 0), w.app, ctx)
    server.start()
    try:
        port, ca = server.port, state / SELF_CERT
        st, _, _ = https(port, ca, "POST", "/api/credential/initial",
                          {"account": "installer", "old": w.initial, "new": NEW_INSTALLER})
        assert st == 204
        st, hdrs, raw = https(port, ca, "POST", "/api/login",
                               {"account": "installer", "password": NEW_INSTALLER})
        assert st == 200
        for h in REQUIRED_HEADERS:
            assert h in hdrs
        cookie = hdrs["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        inst = {"Cookie": cookie.split(";")[0], "X-CSRF-Token": json.loads(raw)["csrf_token"]}
        st, _, _ = https(port, ca, "POST", "/api/accounts",
                          {"name": "tanaka", "role": "owner", "password": OWNER_PW}, inst)
        assert st == 200
        st, _, _ = https(port, ca, "POST", "/api/credential/initial",
                          {"account": "tanaka", "old": OWNER_PW, "new": OWNER_NEW})
        assert st == 204
        st, hdrs, raw = https(port, ca, "POST", "/api/login",
                               {"account": "tanaka", "password": OWNER_NEW})
        owner = {"Cookie": hdrs["Set-Cookie"].split(";")[0],
                 "X-CSRF-Token": json.loads(raw)["csrf_token"]}
        assert https(port, ca, "PUT", "/api/owner/data", CANARIES, owner)[0] == 204
        assert https(port, ca, "PUT", "/api/settings/device_name",
                      {"value": "CANARY-DEVNAME-55"}, owner)[0] == 200
        assert https(port, ca, "POST", "/api/diagnostics", None, inst)[0] == 200
        # a protocol-level error still carries the header set
        st, hdrs, _ = https(port, ca, "BREW", "/api/status")
        assert st >= 400 and all(h in hdrs for h in REQUIRED_HEADERS)
    finally:
        server.shutdown()
        server.server_close()
        w.app.close()
    old_owner_cookie = owner["Cookie"].split("=", 1)[1]
    (state / "accesslog").mkdir()
    (state / "accesslog" / "seg-00000001.log").write_bytes(b"CANARY-LOG-RECORD")
    secrets_before = [p.read_bytes() for p in (state / "keys" / "store").glob("*.key")]
    secrets_before.append((state / "keys" / "device.kek").read_bytes())
    secrets_before += [KeyStore(state).get(n) for n in ("admin-session-pepper", DATA_KEY,
                                                        "admin-settings-mac")]

    # refuses without --yes, and while a gateway holds the lock
    with pytest.raises(PolicyError):
        resale_reset(state, board)
    fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600) if (
        state / "run").is_dir() else None
    if fd is None:
        (state / "run").mkdir()
        fd = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    with pytest.raises(StateError, match="running"):
        resale_reset(state, board, yes=True)
    os.close(fd)

    def reset(*extra: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firmware.gateway.cli.main", "reset",
                               "--resale", "--state-dir", str(state), "--yes", "--json", *extra],
                              capture_output=True, text=True, cwd=ROOT, timeout=120,
                              input=stdin)

    # The access log must reach the platform before any key goes: with no platform known and
    # no operator decision, the reset refuses and destroys nothing.
    rep = reset()
    assert rep.returncode == 1 and "must reach the platform" in rep.stderr
    assert not resale_pending(state) and (state / "keys" / "device.kek").is_file()
    # Discarding the log is the operator's decision: a wrong credential changes nothing.
    why = "no platform contract any more (ticket 4711)"
    rep = reset("--discard-log", why, stdin="not-the-credential\n")
    assert rep.returncode == 1 and not resale_pending(state)
    rep = reset("--discard-log", why, stdin=NEW_INSTALLER + "\n")
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    assert doc["kek_destroyed"] and doc["logs"]["handoff"] == "discard"
    assert doc["logs"]["reason"] == why and doc["state"] == "resold"
    again = reset()  # a resold gateway resets again without a hand-off (no household log)
    assert again.returncode == 0 and json.loads(again.stdout)["logs"]["handoff"] == "none"
    # scan: no canary, secret or key survives anywhere in the state dir
    blob = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    for canary in list(CANARIES.values()) + ["CANARY-DEVNAME-55", "CANARY-LOG-RECORD"]:
        assert canary.encode() not in blob, canary
    for s in secrets_before:
        assert s not in blob
    assert not (state / "keys").exists() and not (state / "admin").exists()
    assert not (state / "update" / "staging" / "bundle.part").exists()
    # the firmware is untouched
    assert _tree(state / "slots") | {"boot": (state / "update/boot.json").read_text()} == \
        firmware_before
    assert (state / "update" / "floors.json").is_file()
    assert resale_pending(state)
    # the old owner's credential and token fail; the gateway is unprovisioned
    app = AdminApp(state, None)
    c = Client(app)
    assert c.login("tanaka", OWNER_NEW).status == 401
    assert c.login("installer", NEW_INSTALLER).status == 401
    c.token = old_owner_cookie
    assert c.call("GET", "/api/owner/data").status == 401
    assert app.status_doc()["installer_credential"] == "absent"
    app.close()
    assert clear_marker(state, "1.5.0")["cleared"] and not resale_pending(state)


def test_reset_cli_refuses_without_yes(tmp_path: Path) -> None:
    state = tmp_path / "s"
    state.mkdir()
    (state / "keep-me").write_text("x")
    rep = subprocess.run([sys.executable, "-m", "firmware.gateway.cli.main", "reset", "--resale",
                          "--state-dir", str(state)], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert rep.returncode != 0 and "--yes" in rep.stderr
    assert (state / "keep-me").exists()


def test_resold_gateway_starts_no_device_or_wan_service(tmp_path: Path) -> None:
    from firmware.gateway.composition import build_services
    from firmware.gateway.runtime.config import GatewayConfig
    from firmware.gateway.runtime.gateway import Gateway

    state = tmp_path / "state"
    state.mkdir()
    resale_reset(state, load_board("sim"), yes=True)
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    names = [s.name for s in build_services(gw)]
    assert "resale" in names
    assert not {"lan", "admin", "wan", "simdevices", "broker"} & set(names), names


def _raw_state(state: Path) -> bytes:
    """Every byte of every file in the state dir (databases, journals, WALs included)."""
    return b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())


def test_transfer_leaves_no_trace_of_the_old_owner(tmp_path: Path) -> None:
    w = World(tmp_path)
    inst = w.installer()
    owner = w.account(inst, "tanaka", "owner", OWNER_PW, OWNER_NEW)
    assert owner.login("tanaka", OWNER_NEW).status == 200
    # the owner names the gateway, opens a maintenance window; the installer made a
    # maintenance account named after the owner; someone mistyped the owner's password
    assert owner.call("PUT", "/api/settings/device_name",
                      {"value": "CANARY-DEVNAME-tanaka"}).status == 200
    assert owner.call("POST", "/api/maintenance/windows", {"minutes": 30}).status == 200
    assert inst.call("POST", "/api/accounts", {"name": "tanaka-support", "role": "maintenance",
                                               "password": OWNER_PW}).status == 200
    assert inst.call("POST", "/api/accounts", {"name": "eng-7", "role": "maintenance",
                                               "password": OWNER_PW}).status == 200
    assert Client(w.app, addr="198.51.100.77").login("tanaka", "wrong-guess-1").status == 401
    assert any(t["key"] == "account:tanaka" for t in w.app.throttle.state())
    # every personal field is sealed in the database: its file holds no name, address or text
    raw = _raw_state(w.state)
    for needle in (b"tanaka", b"CANARY-DEVNAME", b"198.51.100.77"):
        assert needle not in raw, needle
    old_key = KeyStore(w.state).get("admin-db-fields")

    r = inst.call("POST", "/api/ownership/transfer", {"new_owner": "suzuki"})
    assert r.status == 200, body(r)
    summary = body(r)["summary"]
    assert summary["maintenance_accounts_removed"] == 1 and summary["settings_reset"] == 1
    assert summary["throttle_records_cleared"] >= 1 and summary["windows_forgotten"] == 1
    assert "tanaka" not in json.dumps(summary)
    db = w.app.db
    names = [a["name"] for a in db.accounts()]
    assert "tanaka" not in names and "tanaka-support" not in names and "eng-7" in names
    device_name = db.settings()["device_name"]
    assert device_name["value"] == "Mamori gateway" and device_name["updated_by"] != "tanaka"
    assert w.app.throttle.state() == [] and db.windows() == []
    assert all(a["created_by"] != "tanaka" for a in db.accounts())
    # the key the old rows (and any journal page of them) were sealed under is gone
    assert KeyStore(w.state).get("admin-db-fields") != old_key
    assert not KeyStore(w.state).has("admin-db-fields.next")
    assert old_key not in _raw_state(w.state)
    new = Client(w.app)
    assert body(new.login("suzuki", body(r)["new_owner"]["initial_credential"]))["error"] == \
        "must-change"


def test_admin_db_from_before_sealing_is_sealed_on_open(tmp_path: Path) -> None:
    import sqlite3

    from firmware.gateway.admin.db import AdminDB

    state = tmp_path / "state"
    (state / "admin").mkdir(parents=True)
    con = sqlite3.connect(state / "admin" / "admin.db")
    con.executescript(
        "CREATE TABLE accounts (name TEXT PRIMARY KEY, role TEXT NOT NULL, credential TEXT "
        "NOT NULL, created REAL NOT NULL, created_by TEXT NOT NULL);"
        "CREATE TABLE throttle (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, "
        "blocked_until REAL NOT NULL);")
    con.execute("INSERT INTO accounts VALUES ('yamada-CANARY', 'owner', "
                "'{\"must_change\": false}', 1, 'installer')")
    con.execute("INSERT INTO throttle VALUES ('account:yamada-CANARY', 2, 0)")
    con.commit()
    con.close()
    db = AdminDB(state)
    assert [a["name"] for a in db.accounts()] == ["yamada-CANARY"]
    assert db.throttle("account:yamada-CANARY") == (2, 0.0)
    db.close()
    assert b"CANARY" not in (state / "admin" / "admin.db").read_bytes()
    again = AdminDB(state)  # reopening keeps working (the key id matches)
    assert again.account("yamada-CANARY") is not None
    again.close()


def test_admin_db_key_rotation_survives_a_crash_on_either_side(tmp_path: Path) -> None:
    from firmware.gateway.admin.db import FIELDS_KEY, AdminDB

    state = tmp_path / "state"
    db = AdminDB(state)
    db.put_account("kato", "owner", {"must_change": False}, 1.0, "installer")
    # a rotation that never committed: the old key stays, the spare one is dropped
    db.key.begin_rotation()
    db.close()
    db = AdminDB(state)
    assert db.account("kato") is not None and not KeyStore(state).has(FIELDS_KEY + ".next")
    # a rotation that committed but was not promoted: the new key is promoted at open
    new, kid = db.key.begin_rotation()
    with db.lock:
        db.conn.execute("BEGIN IMMEDIATE")
        db._reseal(db.c, new)
        db.conn.execute("INSERT OR REPLACE INTO meta VALUES ('kid', ?)", (kid,))
        db.conn.execute("COMMIT")
    db.close()
    db = AdminDB(state)
    assert db.account("kato") is not None and db.key.kid(KeyStore(state).get(FIELDS_KEY)) == kid
    db.close()


def test_status_file_carries_no_principal_or_free_text(tmp_path: Path) -> None:
    import asyncio

    from firmware.core.events import Event
    from firmware.gateway.runtime.config import GatewayConfig
    from firmware.gateway.runtime.gateway import STATUS_FILE, Gateway

    async def run() -> dict:
        gw = Gateway(GatewayConfig(board_name="sim", state_dir=tmp_path), load_board("sim"))
        gw.register_device("front-door", "ip", 30.0, 3)
        gw.emit(Event("command.executed", "notice", "platform", principal="CANARY-guard-7",
                      action="unlock", target="front-door", result="ok",
                      reason="requested by CANARY-guard-7, approved by CANARY-centre-2",
                      params={"requested_by": "CANARY-guard-7"}))
        gw.emit(Event("admin.account.created", "notice", "local-admin",
                      principal="CANARY-installer", action="create-account",
                      target="CANARY-owner-name", result="ok"))
        gw.write_status()
        return json.loads((tmp_path / STATUS_FILE).read_text())

    doc = asyncio.run(run())
    assert "CANARY" not in json.dumps(doc)
    ev = doc["events"]
    assert [e["kind"] for e in ev] == ["command.executed", "admin.account.created"]
    assert ev[0]["target"] == "front-door" and "target" not in ev[1]  # devices only
    assert ev[0]["action"] == "unlock" and ev[0]["result"] == "ok"
