"""wan.* checks (SR3-H-4, UK5): the WAN client's real context passes; a weakened one fails."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from firmware.gateway.wan import client as wan_client
from firmware.gateway.wan import tls as wan_tls
from firmware.gateway.wan.identity import WanIdentity
from tests.selftest import helpers
from tests.selftest.helpers import provisioned, run_area

REQS = ["SR3-H-4", "UK5"]


def run(state: Path) -> dict:
    return run_area(state, "wan")


def assert_fail(res: dict, check_id: str, needle: str) -> None:
    helpers.assert_fail(res, check_id, REQS, needle)


def test_wan_client_context_passes(tmp_path: Path) -> None:
    res = run(provisioned(tmp_path))
    assert res["wan.tls-policy"].verdict == "pass", res["wan.tls-policy"].evidence
    assert any("installed platform CA to pin" in e for e in res["wan.tls-policy"].evidence)
    r = res["wan.untrusted-server"]
    assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    assert "refused a broker whose certificate comes from an untrusted CA" in ev
    assert "refused a broker with the platform CA's certificate for another host name" in ev
    assert "refused a TLS 1.2 broker offering only CBC suites" in ev


def _no_verify(identity: WanIdentity) -> ssl.SSLContext:
    ctx = wan_tls.client_context(identity)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _no_hostname(identity: WanIdentity) -> ssl.SSLContext:
    ctx = wan_tls.client_context(identity)
    ctx.check_hostname = False
    return ctx


def _old_tls(identity: WanIdentity) -> ssl.SSLContext:
    ctx = wan_tls.client_context(identity)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def _system_store(identity: WanIdentity) -> ssl.SSLContext:
    ctx = wan_tls.client_context(identity)
    ctx.load_verify_locations(cadata=_other_ca())
    return ctx


def _other_ca() -> str:
    from tempfile import mkdtemp

    from firmware.gateway.selftest.tlsprobe import ProbePKI

    return ProbePKI(Path(mkdtemp()), "public-ca").ca_pem


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(("factory", "needles"), [
    (_no_verify, {"wan.tls-policy": "verification is off",
                  "wan.untrusted-server": "connected to a broker whose certificate comes from "
                                          "an untrusted CA"}),
    (_no_hostname, {"wan.tls-policy": "hostname check is off",
                    "wan.untrusted-server": "connected to a broker with the platform CA's "
                                            "certificate for another host name"}),
    (_old_tls, {"wan.tls-policy": "minimum version",
                "wan.untrusted-server": "connected to a TLS 1.2 broker offering only CBC"}),
    (_system_store, {"wan.tls-policy": "besides the pinned platform CA"}),
])
def test_weakened_wan_context_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    factory: object, needles: dict[str, str]) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(wan_client, "client_context", factory)
    res = run(state)
    for cid, needle in needles.items():
        assert_fail(res, cid, needle)
