"""acl.default-deny (R2-3, R2-2): default-deny ACL, no wildcard ★★★ grant, signed allowlist."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.selftest.helpers import provisioned, single_check

CID = "acl.default-deny"
REQS = ["R2-3", "R2-2"]


run, assert_fail = single_check("acl", CID, REQS)


def set_acl(state: Path, rules: list[dict]) -> None:
    (state / "identity" / "acl.json").write_text(json.dumps(rules))


def test_installed_acl_passes(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    assert run(state)[CID].verdict == "pass"
    set_acl(state, [{"principal": "platform", "device": "front-door",
                     "actions": ["lock", "unlock", "status"]},
                    {"principal": "owner-app", "device": "*", "actions": ["status"]}])
    r = run(state)[CID]
    assert r.verdict == "pass", r.evidence
    assert any("2 rule(s) for 2 principal(s)" in e for e in r.evidence)


@pytest.mark.parametrize(("rules", "needle"), [
    ([{"principal": "platform", "device": "*", "actions": ["unlock"]}],
     "principal 'platform' may unlock every device"),
    ([{"principal": "owner-app", "device": "*", "actions": ["status", "disarm"]}],
     "may disarm every device"),
    ([{"principal": "platform", "device": "front-door", "actions": ["*"]}],
     "granted every action ('*') on device 'front-door'"),
])
def test_wildcard_grants_fail(tmp_path: Path, rules: list[dict], needle: str) -> None:
    state = provisioned(tmp_path)
    set_acl(state, rules)
    assert_fail(run(state), needle)


def test_tampered_allowlist_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    p = state / "identity" / "allowlist.json"
    doc = json.loads(p.read_text())
    doc["payload"]["entries"].append({"maker": "Evil", "model": "Cam", "min_firmware": "0",
                                      "transports": ["ip"]})
    p.write_text(json.dumps(doc))
    assert_fail(run(state), "allowlist does not verify")


def test_unprovisioned_gateway_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    shutil.rmtree(state / "identity")
    assert_fail(run(state), "no credentials or ACL were initialised")
