"""lan.tls-policy (SR3-H-5, SR2-H-2, C5): the LAN's TLS floor is the signed allowlist's."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from firmware.common.boardprofile import Board
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.lan import tls as lantls
from provisioning.gateway import issue_gateway
from tests.selftest.helpers import provisioned, single_check, snapshot

REQS = ["SR3-H-5", "SR2-H-2", "C5"]
REAL = lantls.server_context

run, assert_fail = single_check("lan", "lan.tls-policy", REQS)


def test_default_allowlist_means_tls13_only(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    before = snapshot(state)
    r = run(state)["lan.tls-policy"]
    assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    assert "allowlist: TLSv1.3 floor (no model declares a constrained stack)" in ev
    assert "LAN server context: lowest version TLSv1.3" in ev
    assert "TLS 1.2 with ECDHE + AEAD: refused" in ev
    assert "refused TLS 1.2 offering CBC suites only" in ev
    assert "Acme/Lock1: TLS 1.2 refused at admission" in ev
    assert snapshot(state) == before


def test_a_constrained_model_opens_tls12_with_aead_only(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    from provisioning.site import Site

    site = Site(tmp_path / "site")
    site.allow("Acme", "Pico", "ip", constrained_stack=True)
    issue_gateway(site, "sim", "gw1b", tmp_path / "gw1b.bundle")
    install_bundle(tmp_path / "state2", tmp_path / "gw1b.bundle")
    r = run(tmp_path / "state2")["lan.tls-policy"]
    assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    assert "TLS 1.2 allowed for Acme/Pico" in ev and "lowest version TLSv1.2" in ev
    assert "TLS 1.2 with ECDHE + AEAD: accepted (TLSv1.2)" in ev
    assert "refused TLS 1.2 offering CBC suites only" in ev
    assert "Acme/Pico: TLS 1.2 admitted (constrained stack)" in ev
    assert "Acme/Lock1: TLS 1.2 refused at admission" in ev
    assert state.is_dir()


def test_a_lan_that_accepts_tls12_without_a_constrained_model_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)

    def lowered(state_dir: Path, board: Board | None = None,
                tls_floor: str | None = None) -> ssl.SSLContext:
        ctx = REAL(state_dir, board, tls_floor)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    monkeypatch.setattr(lantls, "server_context", lowered)
    res = run(state)
    assert_fail(res, "the LAN server's lowest version is TLSv1.2, the allowlist calls for TLSv1.3")
    assert_fail(res, "accepted a TLS 1.2 handshake")


def test_cbc_suites_on_tls12_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)

    def weak(state_dir: Path, board: Board | None = None,
             tls_floor: str | None = None) -> ssl.SSLContext:
        ctx = REAL(state_dir, board, "TLSv1.2")
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+AES")
        return ctx

    monkeypatch.setattr(lantls, "server_context", weak)
    assert_fail(run(state), "accepted TLS 1.2 with CBC suites only")
