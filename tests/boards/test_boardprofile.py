"""The typed board profile: built only from a validated profile, immutable, optional sections
absent as None or empty, and a wrong field fails loudly instead of reading a default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from firmware.common import stricttoml
from firmware.common.boardprofile import BleRadio, Board, UsbPort
from firmware.common.boards import boards_dir, list_boards, load_board, load_file
from firmware.core import boardspec
from firmware.core.errors import ConfigError
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.zigbee.coordinator import app_config
from host_tools.flash import unit

MINIMAL = """\
name = "tiny"
description = "a minimal profile"
runtime = "cpython"

[cpu]
class = "host"
arch = "any"
cores = 1

[memory]
ram_kib = 1024

[storage]
state_dir = "/var/lib/mamori"
slots = []
boot = "none"

[[network]]
name = "eth0"
role = "wan"
kind = "ethernet"

[radios]
ble = false

[console]
serial = "none"
login_in_production = false

[security]
secure_element = "none"
crypto_accel = []
rtc = false
"""


def _write(tmp: Path, text: str, name: str = "tiny") -> Path:
    p = tmp / (name + ".toml")
    p.write_text(text, encoding="utf-8")
    return p


def test_every_shipped_profile_loads_typed_and_keeps_its_validated_dict() -> None:
    names = list_boards(boards_dir())
    assert {"rpi4", "sim", "pico-w", "cm4"} <= set(names)
    for name in names:
        b = load_board(name, boards_dir())
        assert isinstance(b, Board) and b.name == name
        path = boards_dir() / (name + ".toml")
        assert b.source == str(path)
        parsed = stricttoml.load_file(path)
        assert b.to_dict() == dict(parsed, source=str(path))  # raw: what validate accepted
        assert b.cpu.class_ == parsed["cpu"]["class"]
        assert [i.name for i in b.network] == [i["name"] for i in parsed["network"]]
        assert b.interfaces("wan") == boardspec.interfaces_by_role(parsed, "wan")
        assert b.interfaces("lan") == boardspec.interfaces_by_role(parsed, "lan")
        assert [p.path for p in b.needed_usb_ports] == [
            p["path"] for p in boardspec.needed_usb_ports(parsed)]
        assert b.ble_backend == boardspec.ble_backend(parsed)
        assert b.has_ab_slots == (len(parsed["storage"]["slots"]) == 2)
        assert b.is_sim == (name == "sim")
        assert Board.from_dict(b.to_dict()) == b  # the one way to build one round-trips


def test_missing_required_field_is_refused_by_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("cores = 1\n", ""))
    with pytest.raises(ConfigError) as exc:
        load_file(path)
    assert str(path) in str(exc.value) and "cpu.cores" in str(exc.value)
    data = stricttoml.load_file(_write(tmp_path, MINIMAL, "ok"))
    del data["console"]["serial"]
    with pytest.raises(ConfigError, match=r"x\.toml.*console\.serial"):
        Board.from_dict(data, "x.toml")


def test_unknown_key_is_refused_by_file_and_field(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL.replace("cores = 1\n", "cores = 1\nclas = \"x\"\n"))
    with pytest.raises(ConfigError) as exc:
        load_file(path)
    assert str(path) in str(exc.value) and "cpu.clas" in str(exc.value)
    sim = load_board("sim")
    with pytest.raises(ConfigError, match=r"sim\.toml: field .colour.: unknown field"):
        sim.with_changes(colour="blue")


def test_board_is_immutable_and_its_dict_is_a_copy() -> None:
    b = load_board("rpi4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.name = "sim"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.cpu.arch = "x86_64"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.usb_ports[0].needed = True  # type: ignore[misc]
    assert isinstance(b.storage.slots, tuple) and isinstance(b.network, tuple)
    with pytest.raises(TypeError):
        b.raw["name"] = "sim"  # type: ignore[index]
    with pytest.raises(TypeError):
        b.raw["cpu"]["arch"] = "x86_64"  # type: ignore[index]
    d = b.to_dict()
    d["cpu"]["arch"] = "x86_64"
    d["network"].clear()
    assert b.cpu.arch == "aarch64" and b.raw["cpu"]["arch"] == "aarch64" and b.network
    changed = b.with_changes(storage=dict(d["storage"], slots=["/dev/sda2", "/dev/sda3"]))
    assert changed.storage.slots == ("/dev/sda2", "/dev/sda3")
    assert changed.raw["storage"]["slots"] == ("/dev/sda2", "/dev/sda3")
    assert b.storage.slots == ("/dev/mmcblk0p2", "/dev/mmcblk0p3")  # the original unchanged
    with pytest.raises(ConfigError, match="storage.slots"):
        b.with_changes(storage=dict(d["storage"], slots=["/dev/sda2"]))  # validated again


def test_optional_sections_absent_are_none_or_empty(tmp_path: Path) -> None:
    b = load_file(_write(tmp_path, MINIMAL))
    assert b.wifi is None and b.base_os_requires is None
    assert b.radios.ble is None and b.radios.zigbee is None and b.ble_backend == ""
    assert b.usb_ports == () and b.needed_usb_ports == []
    assert b.security.usb_repl_in_production is None
    assert not b.has_ab_slots and not b.is_sim and b.interfaces("lan") == []
    with_radios = load_file(_write(tmp_path, MINIMAL.replace(
        "ble = false\n", "ble = false\n\n[radios.zigbee]\nradio_type = \"znp\"\n"
        "serial_port = \"/dev/ttyUSB0\"\n") + "\n[[usb_ports]]\npath = \"1-1\"\nneeded = false\n",
        "radios"), installed=True)
    zb = with_radios.radios.zigbee
    assert zb is not None and zb.serial_port == "/dev/ttyUSB0"
    assert (zb.baudrate, zb.dongle, zb.usb_port, zb.usb_id) == (None, None, None, None)
    assert with_radios.usb_ports == (UsbPort(path="1-1", needed=False),)
    pico = load_board("pico-w")
    assert pico.base_os_requires is None and pico.radios.zigbee is None
    assert pico.radios.ble == BleRadio(backend="micropython")
    assert pico.security.usb_repl_in_production is False


def test_a_misread_field_fails_instead_of_reading_a_default() -> None:
    """With the dict, ``zb.get("serialport", "sim://zigbee")`` quietly ran a real board on the
    sim radio; on the typed profile a misspelt field is an AttributeError (and a mypy error)."""
    cm4 = load_board("cm4")
    assert cm4.radios.zigbee is not None
    with pytest.raises(AttributeError):
        cm4.radios.zigbee.serialport  # type: ignore[union-attr, attr-defined]  # noqa: B018
    with pytest.raises(AttributeError):
        cm4.get("name")  # type: ignore[attr-defined]
    # Services read the right fields: each value below comes from one profile field only.
    allow = unit.device_allow(cm4)
    assert "DeviceAllow=/dev/ttyUSB0 rw" in allow  # radios.zigbee.serial_port
    assert "DeviceAllow=/dev/ttyAMA0 rw" in allow  # radios.ble.hci_transport (serial:...)
    conf = app_config("ezsp", cm4.radios.zigbee)
    assert conf["device"]["path"] == "/dev/ttyUSB0" and conf["device"]["baudrate"] == 115200
    policy = policy_for_board(load_board("rpi4"))
    assert (policy.wan, policy.lan, policy.board) == (("eth0",), ("wlan0",), "rpi4")
