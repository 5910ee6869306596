"""The installer's issuing steps are safe to run again: nothing is issued twice, expired
installation tickets are issued again."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from firmware.core.errors import ConfigError, StateError
from host_tools.commission import issue
from host_tools.commission.devicelist import Device


def test_each_step_twice_issues_once(tmp_path: Path) -> None:
    site, created = issue.open_site(tmp_path / "site", 2, "Twice")
    assert created and issue.open_site(tmp_path / "site", None, "")[1] is False
    with pytest.raises(ConfigError, match="level 2, not 3"):
        issue.open_site(tmp_path / "site", 3, "")
    devs = [Device("door", "Acme", "Lock 2", "ip"), Device("hall", "Acme", "Sensor 1", "ip")]
    assert len(issue.allow_models(site, {(d.maker, d.model, d.transport) for d in devs})) == 2
    assert issue.allow_models(site, {(d.maker, d.model, d.transport) for d in devs}) == []
    bundle, made = issue.gateway_bundle(site, "sim", "gw", tmp_path / "site/gateways/gw.bundle")
    assert made and issue.gateway_bundle(site, "sim", "gw", bundle) == (bundle, False)
    with pytest.raises(ConfigError, match="holds the bundle of gateway gw"):
        issue.gateway_bundle(site, "sim", "other", bundle)
    creds = issue.device_credentials(site, devs, tmp_path / "site/devices", "gw")
    again = issue.device_credentials(site, devs, tmp_path / "site/devices", "gw")
    assert creds == again and creds["door"].read_bytes() == again["door"].read_bytes()
    creds["hall"].unlink()  # lost after issuing: refused, never issued twice
    with pytest.raises(StateError, match="revoke it"):
        issue.device_credentials(site, devs, tmp_path / "site/devices", "gw")
    assert list(issue.device_credentials(site, devs, tmp_path / "site/devices", "gw",
                                         lost="skip")) == ["door"]


def test_expired_tickets_are_issued_again(tmp_path: Path) -> None:
    site, _ = issue.open_site(tmp_path / "site", 2, "Tickets")
    issue.allow_models(site, {("Acme", "Lock 2", "ip")})
    issue.gateway_bundle(site, "sim", "gw", tmp_path / "gw.bundle")
    devs = [Device("door", "Acme", "Lock 2", "ip")]
    t = issue.install_tickets(site, devs, tmp_path / "devices", "gw", 5)["door"]
    first = json.loads(t.read_text())["payload"]["ticket_id"]
    assert oct(t.with_name("door.ticket.secret.txt").stat().st_mode & 0o777) == oct(0o600)
    assert t.with_name("door.ticket.secret.svg").is_file()
    issue.install_tickets(site, devs, tmp_path / "devices", "gw", 5)
    assert json.loads(t.read_text())["payload"]["ticket_id"] == first  # still valid: kept
    issue.install_tickets(site, devs, tmp_path / "devices", "gw", 5, now=time.time() + 3600)
    assert json.loads(t.read_text())["payload"]["ticket_id"] != first  # expired: new one


def test_a_resumed_commissioning_must_be_the_same_one(tmp_path: Path) -> None:
    from host_tools.commission.progress import Progress

    run = {"board": "sim", "target": "target /s", "gateway": "gw", "devices": "ab12"}
    p = Progress(tmp_path, run)
    began = p.begin("site")
    p.finish("site", began, "created")
    again = Progress(tmp_path, dict(run))
    assert again.done("site") and again.resumed and again.doc["runs"] == 2
    with pytest.raises(ConfigError, match="another devices file") as err:
        Progress(tmp_path, dict(run, devices="cd34"))
    assert "--gateway-id" in str(err.value)
    assert oct((tmp_path / "progress.json").stat().st_mode & 0o777) == oct(0o600)
