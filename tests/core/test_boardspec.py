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


def _radio_board() -> dict:
    d = _minimal()
    d["runtime"] = "cpython"
    d["radios"] = {"ble": {"backend": "hci", "hci_transport": "serial:/dev/ttyAMA0,115200"},
                   "zigbee": {"radio_type": "znp", "serial_port": "/dev/ttyUSB0",
                              "baudrate": 115200}}
    return d


def test_radio_backends_and_types_valid() -> None:
    d = boardspec.validate(_radio_board(), "t.toml")
    assert boardspec.ble_backend(d) == "hci"
    for kind in ("znp", "ezsp", "deconz"):
        d = _radio_board()
        d["radios"]["zigbee"]["radio_type"] = kind
        boardspec.validate(d, "t.toml")
    d["radios"]["ble"] = False
    assert boardspec.ble_backend(boardspec.validate(d, "t.toml")) == ""


def test_unknown_radio_backend_type_and_field_named() -> None:
    cases = (
        (("ble", "backend"), "bluetooth-classic", "radios.ble.backend"),
        (("ble", "hci_transport"), "carrier-pigeon:/dev/x", "radios.ble.hci_transport"),
        (("zigbee", "radio_type"), "xbee", "radios.zigbee.radio_type"),
        (("zigbee", "baudrate"), 1234, "radios.zigbee.baudrate"),
        (("zigbee", "channel"), 15, "radios.zigbee.channel"),
    )
    for (radio, field), value, named in cases:
        d = _radio_board()
        d["radios"][radio][field] = value
        exc = raises(ConfigError, boardspec.validate, d, "t.toml")
        assert "t.toml: field '" + named + "'" in str(exc), str(exc)


def test_ble_needs_a_named_backend_and_its_transport() -> None:
    d = _radio_board()
    d["radios"]["ble"] = True
    exc = raises(ConfigError, boardspec.validate, d, "t.toml")
    assert "radios.ble" in str(exc) and "backend" in str(exc)
    d = _radio_board()
    del d["radios"]["ble"]["hci_transport"]
    exc = raises(ConfigError, boardspec.validate, d, "t.toml")
    assert "radios.ble.hci_transport" in str(exc)
    d = _radio_board()
    d["radios"]["ble"] = {"backend": "bluez", "hci_transport": "usb:0"}
    raises(ConfigError, boardspec.validate, d, "t.toml")
    d = _radio_board()
    d["radios"]["ble"] = {"backend": "micropython"}  # a CPython board
    exc = raises(ConfigError, boardspec.validate, d, "t.toml")
    assert "runtime" in str(exc)
    d = _radio_board()
    d["radios"]["zigbee"]["radio_type"] = "sim"  # sim type on a real port
    raises(ConfigError, boardspec.validate, d, "t.toml")
