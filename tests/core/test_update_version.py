"""Portable tests: firmware version parsing and comparison."""

from firmware.core.errors import PolicyError
from firmware.core.update.version import compare, newest, parse_version
from tests.core.portable import raises


def test_parse_pads_to_four_parts() -> None:
    assert parse_version("1.2") == (1, 2, 0, 0)
    assert parse_version("1.2.3.4") == (1, 2, 3, 4)


def test_compare_is_numeric_not_lexical() -> None:
    assert compare("1.10.0", "1.9.9") == 1
    assert compare("1.2", "1.2.0") == 0
    assert compare("0.9", "1.0") == -1


def test_newest_treats_empty_as_none() -> None:
    assert newest("", "1.0") == "1.0"
    assert newest("2.0", "1.5") == "2.0"
    assert newest("1.0", "") == "1.0"


def test_malformed_versions_refused() -> None:
    for bad in ("", "1", "1.2.3.4.5", "1.x", "01.2", "1..2", "-1.2", "1.2-rc1", "a" * 50):
        raises(PolicyError, parse_version, bad)
    raises(PolicyError, parse_version, None)
