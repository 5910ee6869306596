"""Every self-test check passes on a provisioned gateway and fails when its control is broken."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import os
import ssl
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from firmware.common import tlspolicy
from firmware.common.boards import boards_dir
from firmware.gateway.identity import deviceinfo
from tests.conftest import require
from tests.selftest.helpers import TODAY, assert_fail, provisioned, run_area, snapshot

run = run_area


def test_provisioned_gateway_passes_everything(tmp_path: Path) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    state = provisioned(tmp_path)
    res = run(state)
    # A fresh sim never installed an update: the OTA/scan checks are n/a (with their reason).
    fresh = {k for k, r in res.items()
             if r.verdict == "not_applicable" and "no update was ever installed" in r.reason}
    assert fresh <= {"ota.image-integrity", "ota.floors", "ota.history", "scan.attestation"}
    # The sim board has no image, so no base OS under an application slot.
    if "declares no base OS" in res["board.base-os"].reason:
        fresh.add("board.base-os")
    assert {k: r.verdict for k, r in res.items() if k not in fresh} == \
        {k: "pass" for k in res if k not in fresh}, \
        {k: r.evidence for k, r in res.items() if r.verdict != "pass"}
    assert len(res) >= 8


def test_live_state_is_never_changed(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "stray.pem").write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    before = snapshot(state)
    run(state)
    assert snapshot(state) == before


# --- secrets.plaintext-keys (SR2-H-3, SR3-H-6, UK4) -------------------------------------

KEY_REQS = ["SR2-H-3", "SR3-H-6", "UK4"]


def _pem(key: object) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,  # type: ignore[attr-defined]
                             serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def test_plaintext_pem_key_dropped_into_state_dir(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    p = state / "certs" / "gateway.pem"
    p.parent.mkdir(mode=0o700)
    p.write_bytes(_pem(ec.generate_private_key(ec.SECP256R1())))
    p.chmod(0o600)
    res = run(state, only="secrets")
    assert_fail(res, "secrets.plaintext-keys", KEY_REQS, "certs/gateway.pem: unencrypted PEM")
    assert res["secrets.permissions"].verdict == "pass"  # 0600: only the plaintext is wrong
    p.chmod(0o644)
    res = run(state, only="secrets")
    assert_fail(res, "secrets.permissions", ["SR2-H-3", "UK4"], "certs/gateway.pem")


def test_encrypted_pem_is_not_plaintext(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    (state / "keys" / "backup.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"correct horse battery")))
    (state / "keys" / "backup.pem").chmod(0o600)
    assert run(state, only="secrets.plaintext-keys")["secrets.plaintext-keys"].verdict == "pass"


@pytest.mark.parametrize(("rel", "make", "needle"), [
    ("keys/ble.key", lambda kek: os.urandom(32), "raw key material"),
    # Raw bytes that happen to begin and end with whitespace values (the old check stripped them).
    ("keys/ble.key", lambda kek: b"\n" + os.urandom(30) + b" ", "raw key material"),
    ("keys/zigbee.key", lambda kek: binascii.hexlify(os.urandom(16)), "raw key material"),
    ("data/gw.der", lambda kek: ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), "unencrypted DER private key"),
    ("logs/debug.txt", lambda kek: b"kek=" + binascii.hexlify(kek) + b"\n",
     "copy of the device key"),
    ("export/backup.txt", lambda kek: base64.b64encode(kek), "copy of the device key"),
    ("devices.json", lambda kek: json.dumps({"d1": {"kty": "OKP", "crv": "Ed25519", "x": "AA",
                                                    "d": "secret"}}).encode(), "JWK"),
    ("wan.json", lambda kek: json.dumps({"mqtt": {"private_key": "abc"}}).encode(),
     "field /mqtt/private_key"),
])
def test_raw_and_leaked_key_material_found(tmp_path: Path, rel: str, make: object,
                                           needle: str) -> None:
    state = provisioned(tmp_path)
    kek = (state / "keys" / "device.kek").read_bytes()
    p = state / rel
    p.parent.mkdir(exist_ok=True, mode=0o700)
    p.write_bytes(make(kek))  # type: ignore[operator]
    p.chmod(0o600)
    assert_fail(run(state, only="secrets.plaintext-keys"), "secrets.plaintext-keys", KEY_REQS,
                needle)


# --- secrets.permissions (SR2-H-3, UK4) -------------------------------------------------

@pytest.mark.parametrize(("rel", "mode", "needle"), [
    ("keys/device.kek", 0o644, "keys/device.kek: secret file open to group/others"),
    ("keys", 0o755, "keys: directory open to group/others"),
    ("keys/store/platform-client.key", 0o640, "keys/store/platform-client.key"),
    ("admin.json", 0o666, "admin.json is world-writable"),
    ("logs", 0o777, "logs is world-writable"),
])
def test_permissions_broken(tmp_path: Path, rel: str, mode: int, needle: str) -> None:
    state = provisioned(tmp_path)
    (state / rel).chmod(mode)
    assert_fail(run(state, only="secrets.permissions"), "secrets.permissions",
                ["SR2-H-3", "UK4"], needle)


# --- credentials.no-defaults (C6, UK1, SB327-2, PSTI-1) --------------------------------

CRED_REQS = ["C6", "UK1", "SB327-2", "PSTI-1"]


@pytest.mark.parametrize(("rel", "body", "needle"), [
    ("admin.json", json.dumps({"users": [{"name": "admin", "password": "admin"}]}),
     "/users/0/password is a default or guessable password"),
    ("admin.json", json.dumps({"admin_password": ""}), "default or guessable"),
    ("wifi/hostapd.conf", "ssid=home\nwpa_passphrase=raspberry\n", "default or guessable"),
    ("config.toml", '[web]\npassword = "Tr0ub4dor&3-unique"\n', "stores a password in plaintext"),
    ("service.ini", "[db]\npasswd = 1234\n", "default or guessable"),
])
def test_default_and_plaintext_passwords(tmp_path: Path, rel: str, body: str,
                                         needle: str) -> None:
    state = provisioned(tmp_path)
    p = state / rel
    p.parent.mkdir(exist_ok=True, mode=0o700)
    p.write_text(body, encoding="utf-8")
    res = run(state, only="credentials")
    assert_fail(res, "credentials.no-defaults", CRED_REQS, needle)
    # the finding never repeats the password itself
    assert not any("Tr0ub4dor" in e or "raspberry" in e
                   for e in res["credentials.no-defaults"].evidence)


# --- deviceinfo.* (UK2, PSTI-2, R3-8, PSTI-3) ------------------------------------------

def _edit_info(state: Path, **changes: object) -> None:
    p = state / deviceinfo.FILE
    info = json.loads(p.read_text(encoding="utf-8"))
    for k, v in changes.items():
        if v is None:
            info.pop(k, None)
        else:
            info[k] = v
    p.write_text(json.dumps(info), encoding="utf-8")


def test_disclosure_missing_or_not_https(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    _edit_info(state, security_contact=None)
    assert_fail(run(state, only="deviceinfo"), "deviceinfo.disclosure",
                ["UK2", "PSTI-2", "R3-8"], "security_contact")
    _edit_info(state, security_contact="mailto:psirt@example.com",
               disclosure_url="http://example.com/vdp")
    assert_fail(run(state, only="deviceinfo"), "deviceinfo.disclosure",
                ["UK2", "PSTI-2", "R3-8"], "https")
    (state / deviceinfo.FILE).unlink()
    assert_fail(run(state, only="deviceinfo"), "deviceinfo.disclosure",
                ["UK2", "PSTI-2", "R3-8"], "no device information")


def test_support_period_ended_missing_and_ending(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    _edit_info(state, support_period_end=(TODAY - dt.timedelta(days=1)).isoformat())
    assert_fail(run(state, only="deviceinfo"), "deviceinfo.support-period", ["PSTI-3"],
                "ended")
    _edit_info(state, support_period_end=None)
    assert_fail(run(state, only="deviceinfo"), "deviceinfo.support-period", ["PSTI-3"],
                "support_period_end")
    _edit_info(state, support_period_end=(TODAY + dt.timedelta(days=30)).isoformat())
    r = run(state, only="deviceinfo")["deviceinfo.support-period"]
    assert r.verdict == "pass" and any("WARNING" in e and "30 days" in e for e in r.evidence)


# --- board.* (SR2-H-5, UK6, C8) --------------------------------------------------------

def _board(tmp_path: Path, old: str, new: str) -> Path:
    d = tmp_path / "boards"
    d.mkdir(exist_ok=True)
    text = (boards_dir() / "sim.toml").read_text(encoding="utf-8")
    assert old in text
    (d / "sim.toml").write_text(text.replace(old, new), encoding="utf-8")
    return d


@pytest.mark.parametrize(("old", "new", "needle"), [
    ("login_in_production = false", "login_in_production = true", "offers a login"),
    ('path = "1-1"\nneeded = false', 'path = "1-1"\nneeded = false\nallow = "0781:5567"',
     "not needed but allows 0781:5567"),
    ('allow = "1a86:55d4"', 'allow = "*"', "not a single vendor:product"),
    ('runtime = "cpython"', 'runtime = "java"', "board profile invalid"),
])
def test_board_profile_broken(tmp_path: Path, old: str, new: str, needle: str) -> None:
    state = provisioned(tmp_path)
    res = run(state, only="board", boards_dir=_board(tmp_path, old, new))
    assert_fail(res, "board.profile", ["SR2-H-5", "UK6"], needle)


def test_board_unknown_is_inconclusive(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    _edit_info(state, board=None)
    res = run(state, board=None, only="board")
    assert res["board.profile"].verdict == "inconclusive"


def test_wifi_security(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    d = _board(tmp_path, 'security = "wpa3-sae"', 'security = "none"')
    assert_fail(run(state, only="board", boards_dir=d), "board.wifi-security", ["C8"],
                "'none'")
    d = _board(tmp_path, '[wifi]\nsecurity = "wpa3-sae"\n', "")
    r = run(state, only="board", boards_dir=d)["board.wifi-security"]
    assert r.verdict == "not_applicable" and "no Wi-Fi" in r.reason
    d = _board(tmp_path, 'kind = "loopback"\n\n[[network]]\nname = "lo"\nrole = "lan"\n'
               'kind = "loopback"\n\n[wifi]\nsecurity = "wpa3-sae"\n',
               'kind = "loopback"\n\n[[network]]\nname = "wlan0"\nrole = "lan"\nkind = "wifi"\n')
    assert_fail(run(state, only="board", boards_dir=d), "board.wifi-security", ["C8"],
                "no Wi-Fi security mode")


# --- tls.policy (SR3-H-4, UK5) ----------------------------------------------------------

def _weak_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def _no_verify_client() -> ssl.SSLContext:
    ctx = tlspolicy.client_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _python_default_server() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("factory", "side", "needles"), [
    (_weak_client, "client", ["minimum version", "connected to a TLS 1.1-only server",
                              "connected to a TLS 1.2 CBC-only server"]),
    (_no_verify_client, "client", ["verification is off",
                                   "connected to a server with an untrusted certificate",
                                   "another host name"]),
    (_python_default_server, "server", ["weak suite enabled",
                                        "accepted a TLS 1.2 CBC-only client"]),
])
def test_tls_policy_breaks(tmp_path: Path, factory: object, side: str,
                           needles: list[str]) -> None:
    state = provisioned(tmp_path)
    res = run(state, only="tls", options={"tls_contexts": {"weak": (side, factory)}})
    for n in needles:
        assert_fail(res, "tls.policy", ["SR3-H-4", "UK5"], n)


def test_tls_default_contexts_pass_and_are_exercised(tmp_path: Path) -> None:
    r = run(provisioned(tmp_path), only="tls")["tls.policy"]
    assert r.verdict == "pass"
    ev = "\n".join(r.evidence)
    assert "gateway-client: compliant server accepted (TLSv1.3)" in ev
    assert "refused a TLS 1.2 CBC-only server" in ev and "refused a TLS 1.2 CBC-only client" in ev
    assert "refused a server with an untrusted certificate" in ev
