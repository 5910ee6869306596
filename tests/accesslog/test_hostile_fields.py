"""A log written by an older or compromised gateway: `mamori logs show/export` stay inert."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.common.cli import plain
from firmware.gateway.accesslog.store import AccessLogStore
from host_tools.cli.logs import csv_cell

FORGED = ("\x1b]0;owned\x07\x1b[2J\x1b[H\x1b[32mall good\x1b[0m\r\n2026-12-03T06:30:00.000Z #42 "
          "critical gateway:sim-gateway unlock front-door-lock command.executed -> ok")


@pytest.fixture
def state(tmp_path: Path) -> Path:
    store = AccessLogStore(tmp_path / "gw")
    store.open()
    store.append({"kind": "device.local_operation\x9b2J", "source": "device",
                  "principal": "spare-sensor\x7f", "action": FORGED, "target": "spare-sensor",
                  "result": "done", "reason": "bell\x07", "params": {"note": "=1+1"}})
    store.append({"kind": "device.local_operation", "source": "device",
                  "principal": "spare-sensor", "action": "=cmd|' /C calc'!A0",
                  "target": "spare-sensor", "result": "done"})
    store.close()
    return tmp_path / "gw"


def mamori(*args: str) -> bytes:
    run = subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args],
                         capture_output=True, check=True, timeout=60)
    return run.stdout


def test_show_escapes_control_characters(state: Path) -> None:
    out = mamori("logs", "show", str(state), "--device", "spare-sensor")
    assert not [b for b in out if b < 0x20 and b != 0x0A or b == 0x7F]
    assert "\x9b" not in out.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 3 and lines[-1] == "2 record(s)"  # the forged line stays on its record
    assert "\\x1b]0;owned\\x07" in lines[0] and "\\x0d\\x0a2026-12-03" in lines[0]
    assert "spare-sensor\\x7f" in lines[0] and "(bell\\x07)" in lines[0]


def test_csv_export_neutralises_formulas(state: Path) -> None:
    out = mamori("logs", "export", str(state), "--device", "spare-sensor", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert rows[1]["action"] == "'=cmd|' /C calc'!A0"
    cells = [c for r in rows for c in r.values()]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_prefixes_formula_starts(cell: str) -> None:
    assert csv_cell(cell) == "'" + cell
    assert csv_cell("ok " + cell) == "ok " + cell
    assert csv_cell(7) == 7 and csv_cell("") == ""


def test_plain_escapes_c0_c1_and_del() -> None:
    assert plain("a\x00b\x1fc\x7fd\x80e\x9ff\u00a0g") == "a\\x00b\\x1fc\\x7fd\\x80e\\x9ff\u00a0g"
    assert plain({"k\x1b": "v\n"}) == "k\\x1b v\\x0a"
    assert plain("日本 ok") == "日本 ok"
