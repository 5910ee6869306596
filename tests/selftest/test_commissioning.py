"""Commissioning and platform-requested self-tests: signed, stored, verifiable, tamper-evident."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import IntegrityError, ProtocolError
from firmware.core.events import Event
from firmware.gateway.cli.main import main as gw_main
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.selftest import commissioning as comm
from firmware.gateway.selftest.remote import handle_request
from firmware.gateway.selftest.signing import verify_report
from host_tools.cli.main import main as host_main
from tests.conftest import require
from tests.selftest.helpers import provisioned

ONLY = "deviceinfo"  # a fast feature for the remote tests


def _pub(state: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_public_key((state / comm.DIR / comm.PUBLIC_KEY).read_bytes())


def test_commission_stores_signed_report_with_record(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    state = provisioned(tmp_path)
    rc = gw_main(["commission", "--state-dir", str(state), "--json"])
    out = json.loads(capsys.readouterr().out)
    report = out["envelope"]["report"]
    assert rc == report["summary"]["exit_code"]
    assert report["service_level"] == 3 and report["purpose"] == "commissioning"
    stored = json.loads(Path(out["path"]).read_text())
    assert Path(out["path"]).parent == state / comm.DIR
    assert verify_report(stored, _pub(state)) == report
    record = json.loads((state / comm.DIR / comm.RECORD).read_text())
    assert record["reports"][-1]["report_sha256"] == out["entry"]["report_sha256"]
    # The signing key lives wrapped in the key store, listed in the inventory, never in clear.
    assert KeyStore(state).has(comm.KEY_NAME)
    assert comm.KEY_NAME in {e["name"] for e in KeyStore(state).inventory()}
    assert not list(state.rglob("*.pem")) or all(
        b"PRIVATE" not in p.read_bytes() for p in (state / comm.DIR).glob("*.pem"))
    # A second run keeps the same key and appends to the record.
    gw_main(["commission", "--state-dir", str(state), "--json"])
    again = json.loads(capsys.readouterr().out)
    assert again["entry"]["keyid"] == out["entry"]["keyid"]
    assert len(json.loads((state / comm.DIR / comm.RECORD).read_text())["reports"]) == 2


def test_host_verify_accepts_genuine_and_rejects_tampered(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    state = provisioned(tmp_path)
    out = comm.commission(state)
    pub = state / comm.DIR / comm.PUBLIC_KEY
    expected = out["envelope"]["report"]["summary"]["exit_code"]
    assert host_main(["commissioning", "verify", out["path"], "--key", str(pub)]) == expected
    # Tampered: one verdict flipped and its evidence rewritten.
    env = json.loads(Path(out["path"]).read_text())
    first = env["report"]["results"][0]
    first["verdict"] = "fail" if first["verdict"] == "pass" else "pass"
    first["evidence"] = ["edited"]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(env))
    capsys.readouterr()
    assert host_main(["commissioning", "verify", str(forged), "--key", str(pub)]) == 1
    assert "tampered" in capsys.readouterr().err
    # Signed by another gateway's key.
    other = provisioned(tmp_path / "other")
    other_pub = Path(comm.commission(other)["path"]).parent / comm.PUBLIC_KEY
    assert host_main(["commissioning", "verify", out["path"], "--key", str(other_pub)]) == 1
    # Truncated / malformed.
    cut = tmp_path / "cut.json"
    cut.write_text(Path(out["path"]).read_text()[:200])
    assert host_main(["commissioning", "verify", str(cut), "--key", str(pub)]) == 1


def _gw(state: Path) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    board = load_board("sim")
    return SimpleNamespace(state_dir=state, board=board, emit=events.append), events


def test_remote_request_returns_signed_report_bound_to_request(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    gw, events = _gw(state)
    env = handle_request(gw, {"id": "req-42", "only": ONLY, "level": 2})
    assert env["request_id"] == "req-42"
    report = verify_report({"report": env["report"], "signature": env["signature"]}, _pub(state))
    assert report["request_id"] == "req-42" and report["service_level"] == 2
    assert {r["id"].split(".")[0] for r in report["results"]} == {ONLY}
    assert events[-1].kind == "selftest.completed"
    assert events[-1].params["request_id"] == "req-42"
    # Replaying this report as the answer to another request is detected on the host.
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(env))
    pub = state / comm.DIR / comm.PUBLIC_KEY
    rc_ok = host_main(["commissioning", "verify", str(path), "--key", str(pub),
                       "--request-id", "req-42"])
    assert rc_ok == report["summary"]["exit_code"]
    assert host_main(["commissioning", "verify", str(path), "--key", str(pub),
                      "--request-id", "req-43"]) == 1
    # The unsigned request_id on the envelope cannot be changed to fake the binding either.
    env2 = dict(env, request_id="req-43")
    env2["report"] = dict(env["report"], request_id="req-43")
    with pytest.raises(IntegrityError):
        verify_report({"report": env2["report"], "signature": env2["signature"]}, _pub(state))


@pytest.mark.parametrize("bad", [
    None, [], "run", {}, {"id": ""}, {"id": "x" * 65}, {"id": "a/b"}, {"id": 7},
    {"id": "r1", "level": 4}, {"id": "r1", "level": True}, {"id": "r1", "only": "../x"},
    {"id": "r1", "shell": "rm -rf /"},
])
def test_remote_request_malformed_is_refused(tmp_path: Path, bad: Any) -> None:
    state = tmp_path / "state"
    state.mkdir()
    gw, events = _gw(state)
    with pytest.raises(ProtocolError):
        handle_request(gw, bad)
    assert events and events[-1].kind == "selftest.request_refused"
    assert not (state / comm.DIR).exists()


def test_commission_refuses_to_sign_a_report_with_findings_unless_accepted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = provisioned(tmp_path)
    (state / "keys" / "device.kek").chmod(0o644)  # a finding: a secret readable by others
    rc = gw_main(["commission", "--state-dir", str(state), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["stored"] is False
    assert ["secrets.permissions", "fail"] in [[c["id"], c["verdict"]] for c in
                                               out["report"]["results"]]
    assert not (state / comm.DIR / comm.RECORD).exists()
    assert not list(state.rglob("selftest-*.json"))
    # Signed anyway with a recorded reason: the reason and the checks are in the signed part.
    rc = gw_main(["commission", "--state-dir", str(state), "--json",
                  "--accept-findings", "KEK mode fixed on site visit 2"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and out["stored"] is True
    stored = json.loads(Path(out["path"]).read_text())
    report = verify_report(stored, _pub(state))
    assert report["accepted_findings"]["reason"] == "KEK mode fixed on site visit 2"
    assert "secrets.permissions" in report["accepted_findings"]["checks"]
    record = json.loads((state / comm.DIR / comm.RECORD).read_text())
    assert record["reports"][-1]["accepted_findings"]["reason"].startswith("KEK mode")
    # An empty reason is no reason.
    assert gw_main(["commission", "--state-dir", str(state), "--accept-findings", " "]) == 1
