"""usb.* checks (SR2-H-5, C10, UK6): fixture devices refused under the live policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core import usbpolicy
from tests.selftest.helpers import assert_fail, provisioned, run_area, snapshot


def run(state: Path) -> dict:
    return run_area(state, "usb")


def rules(state: Path, text: str) -> None:
    p = state / "usb" / "rules.conf"
    p.parent.mkdir(mode=0o700, exist_ok=True)
    p.write_text(text)


def test_default_deny_policy_passes_and_live_state_untouched(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    rules(state, "# only the board's needed dongle\n")
    before = snapshot(state)
    res = run(state)
    for cid in ("usb.fixture-insertion", "usb.unneeded-ports"):
        assert res[cid].verdict == "pass", (cid, res[cid].evidence)
    ev = "\n".join(res["usb.fixture-insertion"].evidence)
    assert "zigbee radio dongle 1a86:55d4 on 1-2: allowed" in ev
    for label in ("mass-storage stick", "keyboard", "network adapter"):
        assert label in ev and "rogue.usb alert -> WAN alerts" in ev
    assert snapshot(state) == before


@pytest.mark.parametrize(("text", "needle"), [
    ("allow id *:*\n", "fixture mass-storage stick 0781:5567 on 1-4 was authorised"),
    ("allow with-interface one-of { 08:*:* 03:*:* }\n",
     "fixture keyboard 046d:c31c on 1-5 was authorised"),
    ("allow id 0bda:8153 with-interface { ff:ff:00 02:06:00 0a:00:00 }\n",
     "restricted interface(s) authorised"),
])
def test_permissive_policy_fails(tmp_path: Path, text: str, needle: str) -> None:
    state = provisioned(tmp_path)
    rules(state, text)
    res = run(state)
    assert_fail(res, "usb.fixture-insertion", ["SR2-H-5", "C10", "UK6"], needle)


def test_board_lock_bypassed_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(usbpolicy, "port_locked", lambda port, locked: False)
    res = run(state)
    assert_fail(res, "usb.unneeded-ports", ["SR2-H-5", "UK6"],
                "mass-storage stick on locked port 1-1 was authorised")


def test_running_guard_allowed_a_locked_port_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "run").mkdir(exist_ok=True)
    (state / "run" / "status.json").write_text(json.dumps({"usb": {"devices": {
        "1-3": {"id": "0781:5567", "decision": "allow", "via": "rule"}}}}))
    res = run(state)
    assert_fail(res, "usb.unneeded-ports", ["SR2-H-5", "UK6"],
                "allowed device 0781:5567 on locked port 1-3")
