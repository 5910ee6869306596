"""Portable tests of board-profile validation."""

from firmware.core import boardspec
from firmware.core.errors import ConfigError
from tests.core.portable import raises


def _minimal() -> dict:
    return {
        "name": "t", "description": "test", "runtime": "micropython",
        "cpu": {"class": "m0", "arch": "armv6m", "cores": 1},
        "memory": {"ram_kib": 264},
        "storage": {"state_dir": "/s", "slots": [], "boot": "none"},
        "radios": {"ble": False},
        "console": {"serial": "usb", "login_in_production": False},
        "security": {"secure_element": "none", "crypto_accel": [], "rtc": False},
        "network": [{"name": "wlan0", "role": "wan", "kind": "wifi"}],
    }


def test_minimal_profile_valid() -> None:
    assert boardspec.validate(_minimal(), "t.toml")["name"] == "t"


def test_missing_field_named() -> None:
    d = _minimal()
    del d["cpu"]["cores"]
    exc = raises(ConfigError, boardspec.validate, d, "t.toml")
    assert "t.toml: field 'cpu.cores'" in str(exc)


def test_bool_is_not_an_int() -> None:
    d = _minimal()
    d["cpu"]["cores"] = True
    raises(ConfigError, boardspec.validate, d, "t.toml")


def test_wan_interface_required() -> None:
    d = _minimal()
    d["network"][0]["role"] = "lan"
    exc = raises(ConfigError, boardspec.validate, d, "t.toml")
    assert "wan" in str(exc)


def test_one_slot_refused() -> None:
    d = _minimal()
    d["storage"]["slots"] = ["/a"]
    raises(ConfigError, boardspec.validate, d, "t.toml")


def test_needed_port_helpers() -> None:
    d = _minimal()
    d["usb_ports"] = [{"path": "1-1", "needed": True, "allow": "1a86:55d4"},
                      {"path": "1-2", "needed": False}]
    boardspec.validate(d, "t.toml")
    assert [p["path"] for p in boardspec.needed_usb_ports(d)] == ["1-1"]
    assert boardspec.interfaces_by_role(d, "wan") == ["wlan0"]
