"""Policy files are validated: a typo is refused by file, key and nearest valid name, and the
control it governs fails closed (never silently off)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core import refusals
from firmware.core.errors import AuthError, ConfigError
from firmware.core.events import Event
from firmware.gateway.identity import deviceinfo, policies
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.lan.service import LanService
from firmware.gateway.selftest.runner import run_checks
from tests.lan.test_binding import connect, run_gateway
from tests.provisioning.sitekit import Kit, load


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path / "k")


def _policy(kit: Kit, name: str, text: str) -> Path:
    path = kit.state / "policy" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_typo_in_the_binding_policy_is_refused_by_name_and_fails_closed(kit: Kit) -> None:
    creds = load(kit.device("door"))
    path = _policy(kit, "device-binding.json", '{"require_tickets": true}')
    with pytest.raises(ConfigError) as err:
        DeviceBinding(kit.state).policy_requires()
    msg = str(err.value)
    assert str(path) in msg and "'require_tickets'" in msg
    assert "did you mean 'require_ticket'" in msg

    said: list[str] = []

    async def scenario(lan: LanService, events: list[Event]) -> None:
        with pytest.raises(AuthError) as refused:
            await connect(lan, creds)  # valid credentials, but the policy is broken: refused
        said.append(str(refused.value))

    events = run_gateway(kit, scenario)
    assert "its own configuration" in said[0]
    refused = [e for e in events if e.kind == "auth.refused"]
    assert refused[0].params["code"] == refusals.GATEWAY_POLICY
    assert "require_tickets" in refused[0].reason


@pytest.mark.parametrize("text,needle", [
    ('{"require_ticket": "yes"}', "must be true or false, not a string"),
    ('{"require_ticket": 1}', "must be true or false, not an integer"),
    ('{"require_ticket": NaN}', "NaN"),
    ('[true]', "must be an object"),
    ('{"require_ticket": true', "not acceptable JSON"),
])
def test_wrong_types_and_broken_files_are_refused(kit: Kit, text: str, needle: str) -> None:
    _policy(kit, "device-binding.json", text)
    with pytest.raises(ConfigError, match=needle):
        policies.read(kit.state, policies.DEVICE_BINDING)


def test_a_misnamed_policy_file_is_reported_and_the_self_test_fails(kit: Kit) -> None:
    _policy(kit, "device_binding.json", json.dumps({"require_ticket": True}))
    problems = [str(p) for p in policies.check_all(kit.state)]
    assert len(problems) == 1 and "did you mean 'device-binding.json'" in problems[0]
    res = {r.check_id: r for r in run_checks(kit.state, 2, "sim", "acl")}["acl.default-deny"]
    assert res.verdict == "fail" and any("device_binding.json" in e for e in res.evidence)
    (kit.state / "policy" / "device_binding.json").unlink()
    _policy(kit, "device-binding.json", json.dumps({"require_ticket": True}))
    assert policies.check_all(kit.state) == []
    assert DeviceBinding(kit.state).policy_requires() is True


def test_device_information_refuses_a_misspelt_field(kit: Kit) -> None:
    info = deviceinfo.default_info("sim", 2)
    info["suport_contact"] = "mailto:x@example.org"
    with pytest.raises(ConfigError, match="did you mean 'security_contact'"):
        deviceinfo.validate(info)
