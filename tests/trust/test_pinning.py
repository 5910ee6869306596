"""Devices pin their gateway (issue 14, part 3).

A rogue TLS server holding *another* gateway's key of the same site (a real `mamori-gateway`
run from gw-2's installation bundle, which carries that key) gets nothing from a device pinned to
gw-1: the device refuses the peer before sending a single application byte. Credentials that name
no gateway are refused by the agent with the way out; an IP device cannot be issued before its
gateway exists.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.common.gatewaypin import GatewayPin, load_pin
from firmware.core.errors import AuthError, ConfigError, IntegrityError
from firmware.device.credentials import gateway_pin, site_ca
from provisioning.devices import issue_device
from provisioning.site import Site
from tests.conftest import ROOT
from tests.gateway.helpers import logged_events, status, stop_gateway
from tests.trust.house import (
    House,
    creds_doc,
    device_cmd,
    events,
    make_house,
    mamori,
    start_gateway,
)


@pytest.fixture
def house(tmp_path: Path) -> House:
    h = make_house(tmp_path)
    h.device("door")
    return h


def _once(creds: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(device_cmd(creds, endpoint, "--once", "--json"), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_rogue_with_another_gateways_key_gets_nothing(house: House, tmp_path: Path) -> None:
    rogue_state = tmp_path / "rogue"
    rogue, rogue_ep = start_gateway(rogue_state, house.bundles["gw-2"])
    real, real_ep = start_gateway(house.state, house.bundles["gw-1"])
    try:
        out = _once(house.creds["door"], rogue_ep)
        assert out.returncode == 1
        assert "the TLS peer is gateway 'gw-2', but this device belongs to gateway 'gw-1'" \
            in out.stderr
        assert json.loads(out.stdout)["error"] == "auth"
        ok = _once(house.creds["door"], real_ep)  # control: its own gateway
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["gateway"] == "gw-1"
        # the rogue never saw a hello: no session, no device, nothing to command
        _, doc = status(rogue_state)
        assert doc is not None and doc["devices"] == [] and doc["lan"]["sessions"] == 0
        assert not events(doc, "device.connected")
        assert all("hello" in e["reason"] or "TLS" in e["reason"]
                   for e in logged_events(rogue, "auth.refused"))
    finally:
        for p in (rogue, real):
            stop_gateway(p)


def test_unpinned_credentials_refused_until_pinned(house: House) -> None:
    legacy = house.root / "legacy.json"
    doc = creds_doc(house.creds["door"])
    for key in ("gateway_pin", "crl", "platform_command_key", "three_star"):
        doc.pop(key)
    legacy.write_text(json.dumps(doc))
    legacy.chmod(0o600)
    real, endpoint = start_gateway(house.state, house.bundles["gw-1"])
    try:
        out = _once(legacy, endpoint)
        assert out.returncode == 1 and "do not name their gateway" in out.stderr
        assert "mamori provision pin" in out.stderr and "Traceback" not in out.stderr
        pin = mamori("provision", "pin", str(house.site.root), "--credentials", str(legacy),
                     "--gateway", "gw-1", "--json")
        assert pin.returncode == 0, pin.stderr
        assert json.loads(pin.stdout) == {"device_id": "door", "gateway_id": "gw-1",
                                          "credentials": str(legacy)}
        assert _once(legacy, endpoint).returncode == 0
    finally:
        stop_gateway(real)
    # pinning is refused for a revoked gateway and for another site's credentials
    house.site.revoke("gw-2")
    refused = mamori("provision", "pin", str(house.site.root), "--credentials", str(legacy),
                     "--gateway", "gw-2")
    assert refused.returncode == 1 and "revoked" in refused.stderr


def test_no_ip_device_before_its_gateway(tmp_path: Path) -> None:
    site = Site.init(tmp_path / "site", 2, "Empty")
    site.allow("Acme", "Lock 1", "ip")
    out = mamori("provision", "device", str(site.root), "--transport", "ip", "--maker", "Acme",
                 "--model", "Lock 1", "--id", "early", "--out", str(tmp_path / "early.json"))
    assert out.returncode == 1 and "has no gateway yet" in out.stderr
    assert "issue the gateway first" in out.stderr and not (tmp_path / "early.json").exists()
    house = make_house(tmp_path / "two")  # two gateways: which one must be said
    with pytest.raises(ConfigError, match="--gateway"):
        issue_device(house.site, "ip", "Acme", "Lock 1", "which", tmp_path / "w.json")


def test_pin_document_is_checked(house: House, tmp_path: Path) -> None:
    creds = creds_doc(house.creds["door"])
    pin = gateway_pin(creds)
    assert pin.gateway_id == "gw-1"
    payload = creds["gateway_pin"]["payload"]
    for field, value in (("device_id", "someone-else"), ("gateway_id", "gw-2"),
                         ("spki_sha256", "00" * 32)):
        forged = json.loads(json.dumps(creds))
        forged["gateway_pin"]["payload"] = dict(payload, **{field: value})
        with pytest.raises(ConfigError, match="does not verify"):
            gateway_pin(forged)
    other = make_house(tmp_path / "other")
    with pytest.raises(IntegrityError):
        load_pin(creds, other.site.ca_cert())  # a pin signed by another site


def test_pin_refuses_other_gateway_other_key_and_revoked_serial(house: House) -> None:
    der1, der2 = _bundle_der(house, "gw-1"), _bundle_der(house, "gw-2")
    pin = gateway_pin(creds_doc(house.creds["door"]))
    assert pin.check(der1) == "gw-1"
    with pytest.raises(AuthError, match="belongs to gateway 'gw-1'"):
        pin.check(der2)
    with pytest.raises(AuthError, match="another key"):
        GatewayPin("gw-1", "11" * 32).check(der1)
    serial = x509.load_der_x509_certificate(der1).serial_number
    with pytest.raises(AuthError, match="revoked"):
        GatewayPin(pin.gateway_id, pin.spki_sha256, revoked=frozenset({serial})).check(der1)
    with pytest.raises(AuthError, match="no certificate"):
        pin.check(None)
    assert site_ca(creds_doc(house.creds["door"])).subject == house.site.ca_cert().subject


def _bundle_der(house: House, gw: str) -> bytes:
    pem = json.loads(house.bundles[gw].read_text())["payload"]["certificate"].encode()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
