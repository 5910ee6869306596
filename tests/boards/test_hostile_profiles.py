"""Hostile board profiles (issue 23): a ConfigError naming file and field, never a crash.

Before: KeyError for a [wifi] table without `security`, TypeError for `wifi = "x"`,
RecursionError for deeply nested arrays, ValueError for a 5,000-digit integer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.common.boards import load_file
from firmware.core.errors import ConfigError
from tests.conftest import ROOT

SIM = (ROOT / "boards" / "sim.toml").read_text()


def refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_file(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    return msg


def test_wifi_table_without_security(tmp_path: Path) -> None:
    assert "field 'wifi.security'" in refused(tmp_path, SIM.replace('security = "wpa3-sae"',
                                                                    'mode = "x"'))


def test_wifi_that_is_not_a_table(tmp_path: Path) -> None:
    text = SIM.replace('[wifi]\nsecurity = "wpa3-sae"\n', "").replace(
        'runtime = "cpython"', 'runtime = "cpython"\nwifi = "x"')
    assert "field 'wifi': must be a table" in refused(tmp_path, text)


def test_deeply_nested_arrays(tmp_path: Path) -> None:
    for depth in (100, 100000):
        text = SIM + "\n[extra]\nx = " + "[" * depth + "]" * depth + "\n"
        assert "nested deeper" in refused(tmp_path, text)


def test_five_thousand_digit_integer(tmp_path: Path) -> None:
    msg = refused(tmp_path, SIM.replace("cores = 1", "cores = " + "9" * 5000))
    assert "digits" in msg
    msg = refused(tmp_path, SIM.replace("cores = 1", "cores = 0x" + "f" * 40))
    assert "64 bits" in msg


def test_nan_and_inf_refused(tmp_path: Path) -> None:
    assert "finite" in refused(tmp_path, SIM.replace("cores = 1", "cores = nan"))
    assert "finite" in refused(tmp_path, SIM.replace("ram_kib = 1048576", "ram_kib = -inf"))


def test_unknown_keys_refused_with_the_nearest_name(tmp_path: Path) -> None:
    msg = refused(tmp_path, SIM.replace("cores = 1", "coress = 1\ncores = 1"))
    assert "field 'cpu.coress': unknown field" in msg and "did you mean 'cpu.cores'" in msg
    msg = refused(tmp_path, SIM.replace("[console]", "[consol]\nx = 1\n[console]"))
    assert "field 'consol'" in msg and "did you mean 'console'" in msg
    msg = refused(tmp_path, SIM.replace('needed = false', 'needed = false\nneded = true', 1))
    assert "field 'usb_ports[0].neded'" in msg and "did you mean 'usb_ports[0].needed'" in msg


def test_cli_names_file_and_field_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text(SIM.replace('security = "wpa3-sae"', 'mode = "x"'))
    proc = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "boards", "show", "sim"],
                          capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, MAMORI_BOARDS_DIR=str(tmp_path)))
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert str(tmp_path / "sim.toml") in proc.stderr and "wifi.security" in proc.stderr
