"""Portable tests: the never-go-back floors for versions and time."""

from firmware.core.errors import PolicyError
from firmware.core.update.floors import (
    decide,
    mark_failed,
    new_floors,
    raise_floors,
    reference_time,
)
from tests.core.portable import raises


def test_newer_installs_equal_is_current() -> None:
    f = new_floors()
    assert decide("1.0.0", f, "1.1.0") == "install"
    assert decide("1.1.0", f, "1.1.0") == "current"
    assert decide("", f, "0.1") == "install"


def test_rollback_refused() -> None:
    exc = raises(PolicyError, decide, "2.0", new_floors(), "1.9")
    assert "rollback" in str(exc)


def test_below_floor_refused_even_when_newer_than_running() -> None:
    f = raise_floors(new_floors(), min_version="2.0")
    exc = raises(PolicyError, decide, "1.0", f, "1.5")
    assert "minimum installable version 2.0" in str(exc)
    assert decide("1.0", f, "2.0") == "install"


def test_release_below_its_own_minimum_refused() -> None:
    exc = raises(PolicyError, decide, "1.0", new_floors(), "1.5", "1.6")
    assert "its own minimum" in str(exc)


def test_floors_only_rise() -> None:
    f = raise_floors(new_floors(), min_version="2.0", signed_at=500.0)
    f = raise_floors(f, min_version="1.0", signed_at=100.0)
    assert f["version"] == "2.0"
    assert f["time"] == 500.0
    f = raise_floors(f, committed="3.1")
    assert f["version"] == "3.1"


def test_reference_time_never_before_floor() -> None:
    f = raise_floors(new_floors(), signed_at=1000.0)
    assert reference_time(5.0, f) == 1000.0
    assert reference_time(2000.0, f) == 2000.0


def test_failed_version_not_retried() -> None:
    f = mark_failed(new_floors(), "1.2")
    f = mark_failed(f, "1.2")
    assert f["failed"] == ["1.2"]
    raises(PolicyError, decide, "1.1", f, "1.2")
    assert decide("1.1", f, "1.3") == "install"


def test_failed_list_forgets_only_versions_below_the_floor() -> None:
    f = raise_floors(new_floors(), committed="1.4")
    for v in ("1.1", "1.5", "1.6"):
        f = mark_failed(f, v, limit=2)
    assert f["failed"] == ["1.5", "1.6"]
    f = mark_failed(raise_floors(f, committed="1.5"), "1.7", limit=2)
    assert f["failed"] == ["1.6", "1.7"]
    raises(PolicyError, decide, "1.5", f, "1.6")
