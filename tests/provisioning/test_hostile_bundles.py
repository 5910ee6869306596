"""Hostile installation bundles and signed documents (issue 23): the project's own error, named.

Before: AttributeError for a bundle whose chain is not an object, RecursionError for deep
nesting (in json.loads and in the signing canonicalisation), cryptography's InvalidVersion for a
certificate whose version field was altered. Now each is an IntegrityError naming the file and
the field, and `mamori-gateway run --bundle` says so without a traceback.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from firmware.common.signeddoc import canonical, verify_doc
from firmware.core.errors import IntegrityError
from firmware.gateway.identity import install
from tests.gateway.helpers import gateway_cmd
from tests.provisioning.sitekit import Kit


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("bundles"))


def refused(tmp_path: Path, raw: bytes) -> str:
    path = tmp_path / "hostile.bundle"
    path.write_bytes(raw)
    with pytest.raises(IntegrityError) as exc:
        install.install_bundle(tmp_path / "state", path)
    assert str(path) in str(exc.value)
    return str(exc.value)


def test_chain_that_is_not_an_object(tmp_path: Path) -> None:
    msg = refused(tmp_path, b'{"kind":"mamori-install-bundle","payload":{},"chain":1,"sig":""}')
    assert "field" in msg


def test_wrong_member_types_named(kit: Kit, tmp_path: Path) -> None:
    doc = json.loads(kit.bundle.read_text())
    doc["payload"]["level"] = "2"
    assert "payload.level" in refused(tmp_path, json.dumps(doc).encode())
    doc = json.loads(kit.bundle.read_text())
    doc["payload"]["gateway_id"] = "../gw"
    assert "payload.gateway_id" in refused(tmp_path, json.dumps(doc).encode())
    doc = json.loads(kit.bundle.read_text())
    doc["chian"] = doc.pop("chain")
    assert "chian" in refused(tmp_path, json.dumps(doc).encode())


def test_deep_nesting_refused_before_parsing(kit: Kit, tmp_path: Path) -> None:
    text = kit.bundle.read_text()
    for depth in (1000, 100000):
        deep = text.replace('"acl": []', '"acl": ' + "[" * depth + "]" * depth)
        assert "nested deeper" in refused(tmp_path, deep.encode())


def test_canonicalisation_is_bounded(kit: Kit) -> None:
    value: object = 1
    for _ in range(2000):  # json.loads still parses this; the recursive encoder would not
        value = [value]
    with pytest.raises(IntegrityError, match="nested deeper"):
        canonical({"kind": "k", "payload": {"x": value}})
    doc = {"kind": "mamori-allowlist", "payload": {"x": value}, "alg": "ecdsa-p256-sha256",
           "sig": ""}
    with pytest.raises(IntegrityError):
        verify_doc(kit.site.ca_cert(), doc, "mamori-allowlist")
    with pytest.raises(IntegrityError, match="canonicalised"):
        canonical({"x": float("nan")})


def _altered_version(pem: str) -> str:
    der = bytearray(x509.load_pem_x509_certificate(pem.encode()).public_bytes(
        serialization.Encoding.DER))
    marker = bytes([0xA0, 0x03, 0x02, 0x01, 0x02])  # [0] EXPLICIT INTEGER 2 (v3)
    i = der.index(marker)
    der[i + 4] = 0x05  # a version that does not exist
    with pytest.raises(x509.InvalidVersion):  # not a ValueError: the old reader missed it
        x509.load_der_x509_certificate(bytes(der))
    body = base64.encodebytes(bytes(der)).decode()
    return "-----BEGIN CERTIFICATE-----\n" + body + "-----END CERTIFICATE-----\n"


def test_certificate_with_altered_version(kit: Kit, tmp_path: Path) -> None:
    doc = json.loads(kit.bundle.read_text())
    doc["chain"]["root_ca"] = _altered_version(doc["chain"]["root_ca"])
    assert "chain.root_ca" in refused(tmp_path, json.dumps(doc).encode())


def test_certificate_with_altered_curve(kit: Kit, tmp_path: Path) -> None:
    # found by the bundle fuzz target: P-256's OID 1.2.840.10045.3.1.7 turned into 1.4.840...
    # made cryptography raise UnsupportedAlgorithm (neither ValueError nor InvalidSignature)
    doc = json.loads(kit.bundle.read_text())
    der = x509.load_pem_x509_certificate(doc["chain"]["root_ca"].encode()).public_bytes(
        serialization.Encoding.DER)
    p256 = bytes.fromhex("06082a8648ce3d030107")
    assert p256 in der
    bad = der.replace(p256, bytes.fromhex("06082c8648ce3d030107"), 1)
    with pytest.raises(UnsupportedAlgorithm):
        x509.load_der_x509_certificate(bad).public_key()
    for field in ("root_ca", "site_ca"):
        doc = json.loads(kit.bundle.read_text())
        doc["chain"][field] = ("-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(bad).decode()
                               + "-----END CERTIFICATE-----\n")
        assert "chain." + field in refused(tmp_path, json.dumps(doc).encode())


def test_installer_sees_file_and_field_not_a_traceback(kit: Kit, tmp_path: Path) -> None:
    doc = json.loads(kit.bundle.read_text())
    doc["payload"]["platform"] = "x"
    bad = tmp_path / "bad.bundle"
    bad.write_text(json.dumps(doc))
    proc = subprocess.run(gateway_cmd("run", "--board", "sim", "--state-dir",
                                      str(tmp_path / "state"), "--bundle", str(bad),
                                      "--duration", "1"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr and "payload.platform" in proc.stderr
