"""lan.mutual-auth (SR2-H-2, SR3-H-5, C5, UK5): the LAN server refuses unauthenticated devices."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boardprofile import Board
from firmware.gateway.identity.crl import Revocation
from firmware.gateway.lan import tls as lantls
from firmware.gateway.selftest.checks.lan import ProbeSite
from tests.selftest.helpers import provisioned, single_check, snapshot

REQS = ["SR2-H-2", "SR3-H-5", "C5", "UK5"]
REAL = lantls.server_context


run, assert_fail = single_check("lan", "lan.mutual-auth", REQS)


def test_installed_gateway_refuses_bad_devices(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    before = snapshot(state)
    for level in (2, 3):  # SR2-H-2 applies from ★★ on
        r = run(state, level)["lan.mutual-auth"]
        assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    assert "control: valid device certificate accepted" in ev
    for what in ("a device without a client certificate", "a device certificate from another CA",
                 "a revoked device certificate"):
        assert "refused " + what in ev
    assert snapshot(state) == before  # the probe CA went into the scratch copy only


def test_no_lan_identity(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    shutil.rmtree(state / "identity")
    assert_fail(run(state), "no LAN identity installed")


def _patched(monkeypatch: pytest.MonkeyPatch, change: Any) -> None:
    def weak(state_dir: Path, board: Board | None = None,
             tls_floor: str | None = None) -> ssl.SSLContext:
        ctx = REAL(state_dir, board, tls_floor)
        change(ctx)
        return ctx

    monkeypatch.setattr(lantls, "server_context", weak)


def test_server_without_client_authentication(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    _patched(monkeypatch, lambda c: setattr(c, "verify_mode", ssl.CERT_NONE))
    res = run(state)
    assert_fail(res, "accepted a device without a client certificate")
    assert_fail(res, "accepted a device certificate from another CA")


def test_server_without_revocation_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    # revocation is judged at admission, per serial: an admission step that forgot it
    monkeypatch.setattr(Revocation, "check", lambda self, serial: None)
    assert_fail(run(state), "admitted a revoked device certificate")


def test_server_context_does_not_judge_the_whole_crl(tmp_path: Path) -> None:
    # OpenSSL's CRL check refuses every client once the list is stale (issue 14): not used
    ctx = lantls.server_context(provisioned(tmp_path))
    assert not ctx.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF


def test_installed_crl_from_another_ca(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    foreign = ProbeSite(tmp_path)
    (state / "identity" / "crl.pem").write_bytes(foreign.crl([1]))
    assert_fail(run(state), "installed CRL unusable")
