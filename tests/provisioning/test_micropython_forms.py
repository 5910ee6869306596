"""`mamori provision device` writes what a MicroPython device loads (DER forms, descriptor), and
the allowlist declares which models may use TLS 1.2 (a constrained stack)."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.device.portable import mpyagent
from host_tools.cli.main import main as mamori
from provisioning.gateway import issue_gateway
from provisioning.site import Site


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = mamori(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = Site.init(tmp_path / "site", 2, "Home")
    s.allow("Acme", "Lock1", "ip")
    issue_gateway(s, "sim", "gw1", tmp_path / "gw1.bundle")
    issue_gateway(s, "pico-w", "mcu1", tmp_path / "mcu1.bundle")
    return s


def test_device_credentials_come_with_der_forms_and_descriptor(
        site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lock.json"
    code, text = _run(capsys, "provision", "device", str(site.root), "--transport", "ip",
                      "--maker", "Acme", "--model", "Lock1", "--id", "lock-1", "--out",
                      str(out), "--gateway", "gw1")
    assert code == 0, text
    assert "lock.json.key.der (key, 0600)" in text
    creds = json.loads(out.read_text())
    cert_der = Path(str(out) + ".cert.der").read_bytes()
    key_der = Path(str(out) + ".key.der").read_bytes()
    ca_der = Path(str(out) + ".ca.der").read_bytes()
    # The DER forms are the PEM credentials, byte for byte.
    cert = x509.load_pem_x509_certificate(creds["certificate"].encode())
    assert cert_der == cert.public_bytes(serialization.Encoding.DER)
    key = serialization.load_der_private_key(key_der, None)
    assert key.public_key() == cert.public_key()
    assert ca_der == site.ca_cert().public_bytes(serialization.Encoding.DER)
    assert _mode(Path(str(out) + ".key.der")) == 0o600 and _mode(out) == 0o600
    assert _mode(Path(str(out) + ".cert.der")) == 0o644
    # The descriptor pins the gateway by its certificate's hash (no X.509 parsing on the port).
    desc = json.loads(Path(str(out) + ".mpy.json").read_text())
    gw_cert = x509.load_pem_x509_certificate(site.issued("gw1")["certificate"].encode())
    assert desc["gateway_id"] == "gw1" and desc["device_id"] == "lock-1"
    assert desc["gateway_sha256"] == hashlib.sha256(
        gw_cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert desc["files"] == {"certificate": "lock.json.cert.der",
                             "private_key": "lock.json.key.der", "ca": "lock.json.ca.der"}
    assert "PRIVATE" not in json.dumps(desc)
    assert mpyagent.check_descriptor(dict(desc), "lock.json.mpy.json") == desc  # as the port reads
    # Nothing secret on the terminal.
    assert "PRIVATE KEY" not in text and key_der.hex() not in text
    assert creds["private_key"].splitlines()[1] not in text
    # A sim gateway speaks TLS 1.3: no TLS 1.2 allowance in the credentials.
    assert "gateway_tls" not in creds


def test_a_device_of_a_micropython_gateway_may_use_tls12(
        site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.json"
    code, text = _run(capsys, "provision", "device", str(site.root), "--transport", "ip",
                      "--maker", "Acme", "--model", "Lock1", "--id", "s-1", "--out", str(out),
                      "--gateway", "mcu1", "--json")
    assert code == 0, text
    assert json.loads(out.read_text())["gateway_tls"] == "TLSv1.2"
    # Re-pinned to the Linux gateway: TLS 1.3 again, and the descriptor follows the pin.
    code, text = _run(capsys, "provision", "pin", str(site.root), "--credentials", str(out),
                      "--gateway", "gw1")
    assert code == 0, text
    assert "gateway_tls" not in json.loads(out.read_text())
    assert json.loads(Path(str(out) + ".mpy.json").read_text())["gateway_id"] == "gw1"


def test_an_existing_der_file_is_never_overwritten(
        site: Site, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.json"
    Path(str(out) + ".key.der").write_bytes(b"someone else's key")
    code, text = _run(capsys, "provision", "device", str(site.root), "--transport", "ip",
                      "--maker", "Acme", "--model", "Lock1", "--id", "x-1", "--out", str(out))
    assert code != 0 and "x.json.key.der" in text and "already exists" in text
    assert not out.exists()
    assert Path(str(out) + ".key.der").read_bytes() == b"someone else's key"
    assert not site.issued_path("x-1").exists()  # nothing was issued


def test_constrained_stack_is_declared_per_model_in_the_signed_allowlist(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "provision", "allow", str(site.root), "--maker", "Acme",
                      "--model", "Pico", "--transport", "ip", "--constrained-stack")
    assert code == 0 and "LAN: TLSv1.2 or later" in text
    entries = {e["model"]: e for e in site.allowlist()}  # verified against the site CA
    assert entries["Pico"]["constrained_stack"] is True
    assert "constrained_stack" not in entries["Lock1"]
    code, text = _run(capsys, "provision", "allow", str(site.root), "--maker", "Acme",
                      "--model", "Pico", "--transport", "ip", "--no-constrained-stack")
    assert code == 0 and "LAN: TLSv1.3 or later" in text
    assert "constrained_stack" not in {e["model"]: e for e in site.allowlist()}["Pico"]
