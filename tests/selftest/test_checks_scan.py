"""scan.attestation (SR3-H-9, R3-6): signed scan hash, self-scan baseline, SBOM vs advisories."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from firmware.common import tlspolicy
from tests.selftest.helpers import provisioned, single_check, snapshot
from tests.selftest.test_checks_ota import install_release

CID = "scan.attestation"
REQS = ["SR3-H-9", "R3-6"]


run, assert_fail = single_check("scan", CID, REQS)


def advisories(state: Path, name: str, introduced: str = "0") -> None:
    (state / "scan").mkdir(exist_ok=True)
    (state / "scan" / "advisories.json").write_text(json.dumps({"vulns": [{
        "id": "OSV-TEST-1", "summary": "test advisory",
        "affected": [{"package": {"ecosystem": "PyPI", "name": name},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": introduced},
                                                                  {"fixed": "999.0"}]}]}]}]}))


def test_fresh_gateway_not_applicable(tmp_path: Path) -> None:
    r = run(provisioned(tmp_path))[CID]
    assert r.verdict == "not_applicable" and "no update was ever installed" in r.reason


def test_attested_release_passes(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    advisories(state, "no-such-package")
    before = snapshot(state)
    r = run(state)[CID]
    assert r.verdict == "pass", r.evidence
    assert any("signed scan report sha256" in e for e in r.evidence)
    assert any("0 match(es)" in e for e in r.evidence)
    assert snapshot(state) == before


def test_release_without_scan_report_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state, scan_report=False)
    assert_fail(run(state), "carries no scan report hash")


def test_vulnerable_component_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    advisories(state, "cryptography")
    assert_fail(run(state), "known-vulnerable component cryptography")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_weak_tls_context_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)

    def weak() -> ssl.SSLContext:
        ctx = tlspolicy.client_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        return ctx

    monkeypatch.setitem(tlspolicy._FACTORIES, "selftest-weak", ("client", weak))
    assert_fail(run(state), "TLS context selftest-weak: minimum version")


def test_missing_sbom_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path / "gw")
    install_release(tmp_path, state)
    (state / "slots" / "b" / "sbom.cdx.json").unlink()
    assert_fail(run(state), "the running image has no SBOM")
