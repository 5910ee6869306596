"""What the admin and owner rooms need of the update room is handed in, not imported: the
composition root and the verbs bind the firmware status (``runtime/interfaces.py``), and an
app or reset left without it says so instead of reaching into another room."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.service import AdminService
from firmware.gateway.composition import build_services
from firmware.gateway.identity.install import IDENTITY, install_bundle
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.config import AdminConfig, GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.runtime.resalemarker import MARKER, MARKER_FORMAT, RESETTING, marker
from firmware.gateway.update.slots import SLOT_RECORD
from tests.admin.helpers import NEW_INSTALLER, World, https, https_login
from tests.admin.house import issue
from tests.conftest import ROOT

VERSION = "1.4.2"


def _firmware(state: Path) -> None:
    """Slot a holds VERSION and is booted (as an update left it on the sim board)."""
    for slot, version in (("a", VERSION), ("b", "1.4.1")):
        d = state / "slots" / slot
        d.mkdir(parents=True)
        (d / SLOT_RECORD).write_text(json.dumps({"version": version, "board": "sim"}))
    (state / "update").mkdir(exist_ok=True)
    (state / "update" / "boot.json").write_text(json.dumps({"booted": "a"}))


def _verb(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mamori-gateway")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "firmware.gateway.cli.main"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def test_composition_hands_the_firmware_status_to_the_admin_api(tmp_path: Path) -> None:
    _, bundle, initial = issue(tmp_path)
    state = tmp_path / "state"
    board = load_board("sim")
    install_bundle(state, bundle, board)
    _firmware(state)
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state, lan_port=0,
                               admin=AdminConfig(host="127.0.0.1", port=0)), board)
    admin = next(s for s in build_services(gw) if isinstance(s, AdminService))

    async def main() -> dict[str, Any]:
        await admin.start()
        try:
            assert admin.server is not None
            # the installed gateway serves with its site-issued certificate
            port, ca = admin.server.port, state / IDENTITY / "ca-chain.pem"

            def get() -> dict[str, Any]:
                st, _, _ = https(port, ca, "POST", "/api/credential/initial",
                                 {"account": "installer", "old": initial,
                                  "new": NEW_INSTALLER})
                assert st == 204
                inst = https_login(port, ca, "installer", NEW_INSTALLER)
                st, _, raw = https(port, ca, "GET", "/api/status", headers=inst)
                assert st == 200, raw
                return json.loads(raw)  # type: ignore[no-any-return]

            return await asyncio.to_thread(get)
        finally:
            await admin.stop()

    doc = asyncio.run(main())
    assert doc["firmware"]["version"] == VERSION and doc["firmware"]["slot"] == "a", doc
    assert doc["resale"] is None


def test_an_app_left_without_the_firmware_status_says_so(tmp_path: Path) -> None:
    w = World(tmp_path)
    _firmware(w.state)
    try:
        assert "error" in w.app.status_doc()["firmware"]  # nothing handed in: not guessed
    finally:
        w.app.close()
    app = AdminApp(w.state, None, firmware=lambda: {"version": VERSION, "slot": "a"})
    try:
        assert app.status_doc()["firmware"] == {"version": VERSION, "slot": "a"}
    finally:
        app.close()

    def broken() -> dict[str, Any]:
        raise OSError("slot record unreadable")

    app = AdminApp(w.state, None, firmware=broken)
    try:
        assert app.status_doc()["firmware"] == {"error": "OSError"}
    finally:
        app.close()


def test_the_verbs_hand_the_firmware_status_in(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.app.close()
    _firmware(w.state)
    rep = _verb("admin", "status", "--state-dir", str(w.state), "--board", "sim", "--json")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["firmware"]["version"] == VERSION
    rep = _verb("reset", "--resale", "--state-dir", str(w.state), "--yes", "--json")
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    assert doc["firmware_before"] == {"version": VERSION, "slot": "a"} == doc["firmware_after"]
    assert marker(w.state) is not None and (w.state / "slots" / "a" / SLOT_RECORD).is_file()


def test_a_reset_without_the_firmware_status_records_that_it_had_none(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _firmware(state)
    doc = resale_reset(state, load_board("sim"), yes=True)
    assert doc["firmware_before"]["version"] == "" and doc["firmware_before"]["error"]


def test_composition_finishes_an_interrupted_reset_with_the_firmware_status(
        tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    _firmware(state)
    (state / MARKER).write_text(json.dumps({"format": MARKER_FORMAT, "state": RESETTING,
                                            "step": "files", "files_destroyed": 0}))
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    assert "resale" in [s.name for s in build_services(gw)]
    doc = marker(state)
    assert doc is not None and doc["state"] == "resold" and doc["resumed"] == 1
    assert doc["firmware_after"] == {"version": VERSION, "slot": "a"}
