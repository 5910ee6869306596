"""keys.* checks (SR3-H-7, SR2-H-3, UK4): inventory, strength, cryptoperiod, storage."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from firmware.common import kek as devicekey
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.selftest.checks.keys import strength_bits
from tests.selftest import helpers
from tests.selftest.helpers import TODAY, provisioned, run_area

KEY_REQS = ["SR3-H-7", "UK4"]
STORAGE_REQS = ["SR2-H-3", "SR3-H-7", "UK4"]


def run(state: Path) -> dict:
    return run_area(state, "keys")


def assert_fail(res: dict, check_id: str, needle: str) -> None:
    helpers.assert_fail(res, check_id,
                        STORAGE_REQS if check_id == "keys.storage" else KEY_REQS, needle)


def _rsa_der(bits: int) -> bytes:
    return rsa.generate_private_key(65537, bits).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def test_provisioned_keys_pass(tmp_path: Path) -> None:
    res = run(provisioned(tmp_path))
    assert {k: r.verdict for k, r in res.items()} == {"keys.inventory": "pass",
                                                      "keys.storage": "pass",
                                                      "keys.strength": "pass",
                                                      "keys.crl-fresh": "pass"}, \
        {k: r.evidence for k, r in res.items()}
    ev = "\n".join(res["keys.inventory"].evidence)
    for name in ("gateway-tls-passphrase", "ble-static", "platform-client", "device-kek",
                 "accesslog-sign", "identity/gateway-key.pem"):
        assert name in ev


def test_strength_table() -> None:
    assert strength_bits("RSA", 1024) == 80 and strength_bits("RSA", 2048) == 112
    assert strength_bits("ECDSA P-256", 256) == 128 and strength_bits("EC", 192) == 96
    assert strength_bits("X25519", 256) == 128 and strength_bits("AES-128-GCM", 128) == 128
    assert strength_bits("HMAC-SHA-256", 64) == 64


def test_uninventoried_key_files(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    kek = devicekey.device_kek(state, create=False)
    stray = state / "keys" / "store" / "rogue.key"
    stray.write_bytes(devicekey.wrap(kek, os.urandom(32), b"mamori-keystore:rogue"))
    stray.chmod(0o600)
    assert_fail(run(state), "keys.inventory", "keys/store/rogue.key: key file not in the inventory")
    stray.unlink()
    loose = state / "wan" / "client.key"
    loose.write_bytes(os.urandom(32))
    loose.chmod(0o600)
    res = run(state)
    assert_fail(res, "keys.inventory", "wan/client.key: key file not in the inventory")
    assert_fail(res, "keys.storage", "wan/client.key: not wrapped under the device key")


def test_inventoried_key_missing(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "keys" / "store" / "ble-static.key").unlink()
    assert_fail(run(state), "keys.inventory", "inventory lists ble-static but")


def test_expired_cryptoperiod(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    inv_path = state / "keys" / "inventory.json"
    inv = json.loads(inv_path.read_text())
    for e in inv["keys"]:
        if e["name"] == "admin-credential":
            e["created"] = (TODAY - dt.timedelta(days=400)).isoformat() + "T00:00:00+00:00"
    inv_path.write_text(json.dumps(inv))
    assert_fail(run(state), "keys.strength", "admin-credential: 400 days old, past its 365-day")
    old = dt.datetime.combine(TODAY - dt.timedelta(days=1000), dt.time(), dt.UTC).timestamp()
    os.utime(state / "keys" / "device.kek", (old, old))
    assert_fail(run(state), "keys.strength", "device-kek: 1000 days old")


def test_rsa_1024_key(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    KeyStore(state).put("legacy-rsa", _rsa_der(1024), "legacy signing", "RSA", 1024, "test", 365)
    assert_fail(run(state), "keys.strength", "legacy-rsa: RSA 1024 bit gives 80-bit strength")
    # the inventory claims 2048, the stored key says otherwise
    KeyStore(state).put("legacy-rsa", _rsa_der(1024), "legacy signing", "RSA", 2048, "test", 365,
                        replace=True)
    assert_fail(run(state), "keys.strength", "stored key is RSA-1024")


def test_rsa_1024_certificate(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    key = rsa.generate_private_key(65537, 1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (state / "identity" / "legacy.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    assert_fail(run(state), "keys.strength", "identity/legacy.pem: certificate CN=legacy has a "
                                             "RSA-1024 key (80-bit strength)")


def test_plaintext_open_and_foreign_key_files(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    p = state / "keys" / "store" / "ble-static.key"
    p.write_bytes(os.urandom(32))
    assert_fail(run(state), "keys.storage", "ble-static.key: stored in plaintext")
    p.write_bytes(devicekey.wrap(os.urandom(32), os.urandom(32), b"mamori-keystore:ble-static"))
    assert_fail(run(state), "keys.storage", "does not unwrap under this device's KEK")
    (state / "accesslog" / "keys" / "sign.key").chmod(0o644)
    assert_fail(run(state), "keys.storage", "accesslog/keys/sign.key: mode 0644")


def test_feature_checks_are_registered_with_stable_ids() -> None:
    from firmware.gateway.selftest.checks import load_checks

    checks = load_checks()
    want = {"firewall.ruleset": "SR3-H-2", "firewall.listeners": "C4",
            "accesslog.chain": "SR3-H-8", "accesslog.synthetic-record": "SR3-H-8",
            "accesslog.encrypted-at-rest": "SR3-H-6", "accesslog.upload": "R3-5",
            "wan.tls-policy": "SR3-H-4", "wan.untrusted-server": "SR3-H-4",
            "keys.inventory": "SR3-H-7", "keys.strength": "SR3-H-7", "keys.storage": "SR2-H-3",
            "lan.mutual-auth": "SR2-H-2"}
    for cid, req in want.items():
        assert req in checks[cid].requirements, cid
