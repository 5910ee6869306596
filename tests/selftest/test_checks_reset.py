"""reset.keeps-firmware (C7, UK11, R2-5, R2-9): the resale reset run on a scratch copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.gateway.owner import resale
from firmware.gateway.runtime.resalemarker import resale_pending
from tests.selftest.helpers import provisioned, single_check, snapshot

CID = "reset.keeps-firmware"
REQS = ["C7", "UK11", "R2-5", "R2-9"]


run, assert_fail = single_check("reset", CID, REQS)


def test_reset_on_scratch_passes_and_live_state_survives(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    before = snapshot(state)
    r = run(state)[CID]
    assert r.verdict == "pass", r.evidence
    assert "resale marker set" in r.evidence[0]
    assert snapshot(state) == before
    assert not resale_pending(state)


def test_reset_that_does_not_shred_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(resale, "shred", lambda p: False)
    assert_fail(run(state), "canary user data survived the reset")


def test_reset_that_keeps_the_kek_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(resale, "_destroy_kek", lambda state_dir, board: False)
    monkeypatch.setattr(resale, "_walk", lambda root, keep, spare: 0)
    assert_fail(run(state), "the device KEK survived the reset")


def test_reset_that_wipes_firmware_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(resale, "_keep", lambda state_dir, board: [])
    assert_fail(run(state), "firmware slot slots/a changed or was destroyed")


def test_reset_without_marker_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    real = resale.resale_reset

    def no_marker(state_dir: Path, *a: object, **kw: object) -> dict:
        doc = real(state_dir, *a, **kw)  # type: ignore[arg-type]
        (Path(state_dir) / resale.MARKER).unlink()
        return doc

    monkeypatch.setattr(resale, "resale_reset", no_marker)
    assert_fail(run(state), "resale.json was not set")
