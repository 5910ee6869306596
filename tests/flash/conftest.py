"""Fixtures for the flashing tests: a boards dir with the MicroPython test board, a target."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, require
from tests.flash.target import WasmTarget

DEV = "--unsigned-dev-build"  # flash the local tree (not a signed release)

SIM_BOARD = """\
name = "mp-sim"
description = "MicroPython WebAssembly port behind a pseudo-terminal (tests)"
runtime = "micropython"

[cpu]
class = "wasm32"
arch = "wasm"
cores = 1

[memory]
ram_kib = 2048

[storage]
state_dir = "/state"
slots = ["/slot_a", "/slot_b"]
boot = "slot-dir"

[[network]]
name = "wlan0"
role = "wan"
kind = "wifi"

[radios]
ble = false

[console]
serial = "usb-cdc"
login_in_production = false

[security]
secure_element = "none"
crypto_accel = []
rtc = false
usb_repl_in_production = false
"""


@pytest.fixture(scope="session")
def boards_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real board profiles plus mp-sim (the WebAssembly MicroPython target)."""
    d = tmp_path_factory.mktemp("boards")
    for p in (ROOT / "boards").glob("*.toml"):
        shutil.copy(p, d / p.name)
    (d / "mp-sim.toml").write_text(SIM_BOARD)
    return d


@pytest.fixture
def env(boards_dir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for `mamori` subprocesses (and this process) using the test boards."""
    monkeypatch.setenv("MAMORI_BOARDS_DIR", str(boards_dir))
    monkeypatch.setenv("MAMORI_CACHE_DIR", str(boards_dir.parent / "cache"))
    return dict(os.environ, MAMORI_OPERATOR="line-7")


@pytest.fixture
def target() -> Iterator[WasmTarget]:
    """A fresh MicroPython interpreter (its filesystem is in memory) on a pty."""
    require("node")
    t = WasmTarget()
    try:
        yield t
    finally:
        t.close()


def mamori(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real `mamori` command line."""
    return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def deploy_json(env: dict[str, str], port: str, *extra: str) -> dict:
    """`mamori flash deploy --board mp-sim --port PORT --no-reset --json`, must succeed
    (from the local tree as a development build unless EXTRA names a --release)."""
    src = () if "--release" in extra else (DEV,)
    p = mamori(env, "flash", "deploy", *src, "--board", "mp-sim", "--port", port, "--no-reset",
               "--json", "--quiet", *extra)
    assert p.returncode == 0, p.stderr + p.stdout
    return json.loads(p.stdout)
