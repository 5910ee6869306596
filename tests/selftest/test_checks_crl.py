"""keys.crl-fresh (SR2-H-2, SR3-H-7): the installed CRL is the site's and not stale."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from firmware.gateway.selftest.checks.lan import ProbeSite
from provisioning.site import Site
from tests.selftest.helpers import provisioned, single_check

REQS = ["SR2-H-2", "SR3-H-7"]
run, assert_fail = single_check("keys.crl-fresh", "keys.crl-fresh", REQS)


def _crl(site: Site, start: dt.timedelta, end: dt.timedelta, number: int = 50) -> bytes:
    now = dt.datetime.now(dt.UTC)
    crl = (x509.CertificateRevocationListBuilder().issuer_name(site.ca_cert().subject)
           .last_update(now + start).next_update(now + end)
           .add_extension(x509.CRLNumber(number), critical=False)
           .sign(site.ca_key(), hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM)


def _state(tmp_path: Path) -> tuple[Path, Site]:
    state = provisioned(tmp_path)
    return state, Site(tmp_path / "site")


def test_fresh_crl_passes(tmp_path: Path) -> None:
    state, _ = _state(tmp_path)
    r = run(state)["keys.crl-fresh"]
    assert r.verdict == "pass" and "fresh" in " ".join(r.evidence), r.evidence


def test_stale_crl_fails_until_a_fresh_one_is_installed(tmp_path: Path) -> None:
    state, site = _state(tmp_path)
    crl = state / "identity" / "crl.pem"
    crl.write_bytes(_crl(site, -dt.timedelta(days=40), -dt.timedelta(days=10)))
    assert_fail(run(state), "stale for")
    crl.write_bytes(_crl(site, -dt.timedelta(minutes=5), dt.timedelta(days=30), 51))
    assert run(state)["keys.crl-fresh"].verdict == "pass"


def test_ageing_crl_passes_with_a_warning(tmp_path: Path) -> None:
    state, site = _state(tmp_path)
    (state / "identity" / "crl.pem").write_bytes(
        _crl(site, -dt.timedelta(days=9), dt.timedelta(days=1)))
    r = run(state)["keys.crl-fresh"]
    assert r.verdict == "pass" and "ageing" in " ".join(r.evidence)


def test_crl_of_another_ca_fails(tmp_path: Path) -> None:
    state, _ = _state(tmp_path)
    (state / "identity" / "crl.pem").write_bytes(ProbeSite(tmp_path).crl([1]))
    assert_fail(run(state), "installed CRL unusable")
