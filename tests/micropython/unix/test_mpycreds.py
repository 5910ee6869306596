"""On the unix port: the MicroPython agent loads its descriptor and DER files, and refuses what
its TLS stack cannot use (run by tests/micropython/run_core_tests.py, not by pytest)."""

import json
import os

from firmware.core.errors import ConfigError
from firmware.device.portable import mpyagent
from tests.core.portable import raises

DIR = "/tmp/mamori-mpy-test-%d" % os.getpid() if hasattr(os, "getpid") else "/tmp/mamori-mpy-t"
DESC = {"format": "mamori-mpy-device/1", "device_id": "pico-1", "maker": "Acme",
        "model": "Pico", "site_id": "site-1", "gateway_id": "gw1", "gateway_sha256": "ab" * 32,
        "three_star": [], "files": {"certificate": "d.cert.der", "private_key": "d.key.der",
                                    "ca": "d.ca.der"}}


def _write(name: str, data: bytes) -> str:
    try:
        os.mkdir(DIR)
    except OSError:
        pass
    path = DIR + "/" + name
    with open(path, "wb") as f:
        f.write(data)
    return path


def _desc(**over: object) -> str:
    doc = dict(DESC)
    for k in over:
        doc[k] = over[k]
    return _write("d.mpy.json", json.dumps(doc).encode())


def test_descriptor_and_der_files_are_loaded_beside_each_other() -> None:
    for name, data in (("d.cert.der", b"\x30\x01c"), ("d.key.der", b"\x30\x01k"),
                       ("d.ca.der", b"\x30\x01a")):
        _write(name, data)
    creds = mpyagent.load_credentials(_desc())
    assert creds["certificate_der"] == b"\x30\x01c" and creds["private_key_der"] == b"\x30\x01k"
    assert creds["ca_der"] == b"\x30\x01a" and creds["gateway_id"] == "gw1"


def test_a_hostile_or_broken_descriptor_is_refused_by_field() -> None:
    assert raises(ConfigError, mpyagent.load_credentials, _desc(gateway_sha256="zz")).field \
        == "gateway_sha256"
    assert raises(ConfigError, mpyagent.load_credentials, _desc(device_id="../x")).field \
        == "device_id"
    assert raises(ConfigError, mpyagent.load_credentials, _desc(extra=1)).field == "extra"
    bad_file = dict(DESC["files"])
    bad_file["ca"] = "../../etc/passwd"
    assert raises(ConfigError, mpyagent.load_credentials, _desc(files=bad_file)).field \
        == "files.ca"
    _write("deep.mpy.json", b"[" * 100 + b"]" * 100)
    raises(ConfigError, mpyagent.load_credentials, DIR + "/deep.mpy.json")
    raises(ConfigError, mpyagent.load_credentials, DIR + "/missing.mpy.json")


def test_material_the_tls_stack_cannot_load_is_refused() -> None:
    creds = dict(DESC)
    creds["ca_der"] = b"\x30\x03abc"
    creds["certificate_der"] = b"not a certificate"
    creds["private_key_der"] = b"-----BEGIN " + b"PRIVATE KEY-----\nnope\n"  # PEM, not DER
    assert "cannot be loaded" in raises(ConfigError, mpyagent.Link, "127.0.0.1", 9,
                                        creds).message
