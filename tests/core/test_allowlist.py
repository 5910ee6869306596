"""Portable: the allowlist's verdict on a model, shared by the Linux and MicroPython gateways."""

from firmware.core import allowlist
from firmware.core.errors import PolicyError
from tests.core.portable import raises

ENTRIES = [{"maker": "Acme", "model": "Lock", "transports": ["ip", "ble"],
            "min_firmware": "1.10"}]


def test_allowed_model_transport_and_firmware() -> None:
    assert allowlist.check_model(ENTRIES, "Acme", "Lock", "ble", "1.10.0")["model"] == "Lock"
    assert allowlist.check_model(ENTRIES, "Acme", "Lock", "ip", "")["model"] == "Lock"


def test_refusals() -> None:
    old = raises(PolicyError, allowlist.check_model, ENTRIES, "Acme", "Lock", "ip", "1.9.9")
    assert old.refusal == "firmware-too-old" and "below the allowlist minimum 1.10" in old.message
    assert "not on the level-3 allowlist" in raises(
        PolicyError, allowlist.check_model, ENTRIES, "Acme", "Lock", "zigbee", "", 3).message
    raises(PolicyError, allowlist.check_model, ENTRIES, "Other", "Lock", "ip")


def test_version_numbers_compare_as_numbers() -> None:
    assert allowlist.version_key("1.10.2") > allowlist.version_key("1.9")
    assert allowlist.version_key("2.0-beta") == (2, 0)
    assert allowlist.version_key("1.\u00b2") == (1, 0)  # a superscript is not a digit
