"""Board profiles: every shipped profile is valid; broken ones are refused naming file and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.common.boards import list_boards, load_board, load_file
from firmware.core.errors import ConfigError
from tests.conftest import ROOT

REQUIRED = {"rpi4", "rpi5", "pi-zero-2w", "cm4", "pico-w", "esp32-s3", "sim"}


def mamori(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT)


def test_required_profiles_present_and_valid() -> None:
    assert set(list_boards()) >= REQUIRED
    for name in list_boards():
        b = load_board(name)
        assert b.name == name
        for port in b.usb_ports:
            assert port.needed is False or port.allow


def test_micropython_boards_disable_usb_repl() -> None:
    for name in ("pico-w", "esp32-s3"):
        assert load_board(name).security.usb_repl_in_production is False


def test_show_json_cli() -> None:
    proc = mamori("boards", "show", "rpi4", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["runtime"] == "cpython" and doc["radios"]["zigbee"]["serial_port"]


def test_list_cli() -> None:
    proc = mamori("boards", "list", "--json")
    assert proc.returncode == 0
    assert {b["name"] for b in json.loads(proc.stdout)["boards"]} >= REQUIRED


def test_unknown_board_cli() -> None:
    proc = mamori("boards", "show", "toaster")
    assert proc.returncode == 1
    assert "unknown board 'toaster'" in proc.stderr and "rpi4" in proc.stderr


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "boards" / "rpi4.toml").read_text()
    assert old in text
    path = tmp_path / "rpi4.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old,new,field", [
    ("ram_kib = 2097152\n", "", "memory.ram_kib"),
    ("ram_kib = 2097152", 'ram_kib = "lots"', "memory.ram_kib"),
    ('runtime = "cpython"', 'runtime = "java"', "runtime"),
    ('role = "wan"', 'role = "dmz"', "network[0].role"),
    ('secure_element = "none"', 'secure_element = "maybe"', "security.secure_element"),
    ('allow = "1a86:55d4"\n', "", "usb_ports[2].allow"),
    ('boot = "tryboot"', 'boot = 3', "storage.boot"),
    ('backend = "bluez"', 'backend = "bluetooth"', "radios.ble.backend"),
    ('radio_type = "ezsp"', 'radio_type = "xbee"', "radios.zigbee.radio_type"),
    ('radio_type = "ezsp"\n', "", "radios.zigbee.radio_type"),
    ("baudrate = 115200", 'baudrate = "fast"', "radios.zigbee.baudrate"),
])
def test_broken_profile_names_file_and_field(tmp_path: Path, old: str, new: str,
                                              field: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_file(path)
    assert str(path) in str(err.value)
    assert "field '%s'" % field in str(err.value)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("name = \n")
    with pytest.raises(ConfigError) as err:
        load_file(path)
    assert str(path) in str(err.value) and "not valid TOML" in str(err.value)


def test_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text((ROOT / "boards" / "rpi4.toml").read_text())
    with pytest.raises(ConfigError, match="field 'name'"):
        load_file(path)


def test_cli_reports_broken_profile(tmp_path: Path) -> None:
    _broken(tmp_path, 'runtime = "cpython"', 'runtime = "java"')
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "boards", "show", "rpi4"],
                          capture_output=True, text=True, cwd=ROOT,
                          env={"MAMORI_BOARDS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert "rpi4.toml: field 'runtime'" in proc.stderr


def test_cli_reports_unknown_radio_backend_without_traceback(tmp_path: Path) -> None:
    _broken(tmp_path, 'backend = "bluez"', 'backend = "hci"')  # hci needs its transport
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "boards", "show", "rpi4",
                           "--json"], capture_output=True, text=True, cwd=ROOT,
                          env={"MAMORI_BOARDS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "rpi4.toml: field 'radios.ble.hci_transport'" in proc.stdout
