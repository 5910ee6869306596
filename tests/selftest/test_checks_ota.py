"""ota.* checks (SR2-H-6, UK7, C11, R2-7, UK3, R2-8) on a gateway with an installed release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.gateway.update.agent import UpdateAgent
from host_tools.release.repo import ReleaseRepo
from tests.selftest.helpers import assert_fail, provisioned, run_area, snapshot

IMG = ["SR2-H-6", "UK7", "C11"]


def install_release(tmp: Path, state: Path, scan_report: bool = True) -> Path:
    """Publish 1.0.0 for sim (with a scan report) and install it through the real agent."""
    repo = ReleaseRepo.init(tmp / "repo", root_keys=1, root_threshold=1)
    payload = tmp / "payload"
    (payload / "app").mkdir(parents=True)
    (payload / "app" / "main.py").write_text("VERSION = '1.0.0'\n")
    (payload / "app" / "data.bin").write_bytes(bytes(range(256)) * 12)
    report = tmp / "scan-report.json"
    report.write_text(json.dumps({"result": "pass"}))
    repo.publish("sim", "1.0.0", payload, chunk_size=1024, changelog="first",
                 scan_report=report if scan_report else None)
    agent = UpdateAgent(state, load_board("sim"), str(tmp / "repo"))
    agent.trust_root(repo.trusted_root())
    out = agent.run()
    assert out["result"] == "installed", out
    return tmp / "repo"


def run(state: Path, only: str = "ota") -> dict:
    return run_area(state, only)


def test_fresh_gateway_is_not_applicable_but_verifier_exercised(tmp_path: Path) -> None:
    res = run(provisioned(tmp_path))
    r = res["ota.image-integrity"]
    assert r.verdict == "not_applicable" and "no update was ever installed" in r.reason
    assert any("tampered metadata refused" in e for e in r.evidence), r.evidence
    assert res["ota.floors"].verdict == "not_applicable"
    assert res["ota.history"].verdict == "not_applicable"


def test_fresh_gateway_with_broken_verifier_fails(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.gateway.update import tufclient

    monkeypatch.setattr(tufclient, "explain", lambda exc: (_ for _ in ()).throw(exc))
    monkeypatch.setattr(tufclient.TufClient, "refresh", lambda self: None)
    monkeypatch.setattr(tufclient.TufClient, "target", lambda self, p: object())
    assert_fail(run(provisioned(tmp_path)), "ota.image-integrity", IMG,
                "accepted metadata whose target hash was altered")


def test_installed_release_passes(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    before = snapshot(state)
    res = run(state)
    for cid in ("ota.image-integrity", "ota.floors", "ota.history"):
        assert res[cid].verdict == "pass", (cid, res[cid].evidence)
    ev = "\n".join(res["ota.image-integrity"].evidence)
    assert "chunk hash(es) equal the signed ones" in ev
    assert "slot record equals the signed target" in ev
    assert snapshot(state) == before


def test_modified_running_image_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    p = state / "slots" / "b" / "payload" / "app" / "main.py"
    p.write_text("VERSION = 'backdoored'\n")
    assert_fail(run(state), "ota.image-integrity", IMG, "file app/main.py is corrupted")


def test_tampered_trusted_metadata_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    fam = state / "update" / "tuf" / "sim.json"
    doc = json.loads(fam.read_text())
    doc["signed"]["targets"]["sim/firmware.bundle"]["custom"]["mamori"]["changelog"] = "x"
    fam.write_text(json.dumps(doc))
    assert_fail(run(state), "ota.image-integrity", IMG, "metadata signature check failed")


def test_slot_record_substituted_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    rec = state / "slots" / "b" / ".mamori-slot.json"
    doc = json.loads(rec.read_text())
    doc["target"]["sha256"] = "ab" * 32
    rec.write_text(json.dumps(doc))
    assert_fail(run(state), "ota.image-integrity", IMG,
                "slot's release record differs from the signed target")


def test_floors_broken_fail(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    floors = state / "update" / "floors.json"
    floors.write_text(json.dumps({"version": "9.0.0", "time": 0, "failed": []}))
    res = run(state, "ota.floors")
    assert_fail(res, "ota.floors", ["R2-7", "UK3"], "version floor 9.0.0 is above the running")
    assert_fail(res, "ota.floors", ["R2-7", "UK3"], "no time floor recorded")
    floors.unlink()
    assert_fail(run(state, "ota.floors"), "ota.floors", ["R2-7", "UK3"], "floors.json is missing")


def test_history_broken_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    hist = state / "update" / "history.json"
    hist.write_text("[{\"action\": \"installed\"}]")
    assert_fail(run(state, "ota.history"), "ota.history", ["R2-8"], "lack action, version")
    hist.write_text("not json")
    assert_fail(run(state, "ota.history"), "ota.history", ["R2-8"], "unreadable")
