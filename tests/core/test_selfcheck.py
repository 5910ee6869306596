"""Portable tests of the deployable self-check (run under pytest and on MicroPython)."""

from firmware.core import selfcheck


def test_selfcheck_passes() -> None:
    result = selfcheck.run()
    assert result["ok"], result
    assert sorted(result["checks"]) == ["frames", "hmac", "sha256"]
    assert selfcheck.line(result) == "selfcheck ok: frames hmac sha256"


def test_selfcheck_reports_a_failing_check() -> None:
    saved = selfcheck.CHECKS
    try:
        selfcheck.CHECKS = saved + (("broken", lambda: 1 // 0),)
        result = selfcheck.run()
    finally:
        selfcheck.CHECKS = saved
    assert not result["ok"]
    assert result["checks"]["broken"] is False
    assert selfcheck.line(result) == "selfcheck FAILED: broken"


def test_known_answer_would_catch_a_wrong_digest() -> None:
    assert selfcheck.SHA256_ABC != selfcheck.HMAC_JEFE
    assert selfcheck._hex(b"\x00\xff") == "00ff"
