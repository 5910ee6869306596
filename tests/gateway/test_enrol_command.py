"""`mamori-gateway enrol`: keys made on the gateway, a public request, then the bundle installs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from firmware.gateway.identity.install import PENDING_BLE, PENDING_TLS, install_bundle
from firmware.gateway.identity.keystore import KeyStore
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT
from tests.gateway.helpers import gateway_cmd


def enrol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gateway_cmd("enrol", *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_enrol_request_then_bundle_installs(tmp_path: Path) -> None:
    state, req = tmp_path / "state", tmp_path / "req.json"
    proc = enrol("--state-dir", str(state), "--id", "gw-csr", "--out", str(req), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gateway_id"] == "gw-csr"
    doc = json.loads(req.read_text())
    assert doc["gateway_id"] == "gw-csr" and "CERTIFICATE REQUEST" in doc["csr"]
    assert "PRIVATE" not in req.read_text()
    ks = KeyStore(state)
    assert ks.has(PENDING_TLS) and ks.has(PENDING_BLE)
    site = Site.init(tmp_path / "site", 2, "CSR house")
    issue_gateway(site, "sim", "gw-csr", tmp_path / "gw.bundle", request=req)
    meta = install_bundle(state, tmp_path / "gw.bundle")
    assert meta["gateway_id"] == "gw-csr" and "on the gateway" in meta["key_origin"]
    bundle = json.loads((tmp_path / "gw.bundle").read_text())
    assert not bundle["payload"].get("secrets")  # no private key ever left the gateway


def test_enrol_refuses_bad_id_and_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "req.json"
    bad = enrol("--state-dir", str(tmp_path / "s"), "--id", "../x", "--out", str(out))
    assert bad.returncode == 1 and "not valid" in bad.stderr and not out.exists()
    out.write_text("{}")
    again = enrol("--state-dir", str(tmp_path / "s"), "--id", "gw", "--out", str(out))
    assert again.returncode == 1 and "already exists" in again.stderr
