"""Run the portable core's tests on a real MicroPython interpreter (Node.js + WebAssembly port).

Prints one line per test and ends with ``N passed, M failed``; exits non-zero on any failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "micropython" / "runner.mjs"
PORT = ROOT / "tests/micropython/node_modules/@micropython/micropython-webassembly-pyscript"

# The portable code: every file in these folders must run on MicroPython.
PORTABLE_DIRS = ["firmware/core", "firmware/device/portable", "tests/core"]
PORTABLE_FILES = ["firmware/__init__.py", "firmware/device/__init__.py", "tests/__init__.py"]


def portable_files() -> list[str]:
    """Every file copied into the interpreter, relative to the repository root."""
    files = [f for f in PORTABLE_FILES if (ROOT / f).is_file()]
    for d in PORTABLE_DIRS:
        base = ROOT / d
        if base.is_dir():
            files += sorted(str(p.relative_to(ROOT)) for p in base.rglob("*.py"))
    return files


def main() -> int:
    """Run the suite; return the process exit code."""
    node = shutil.which("node")
    if node is None or not PORT.is_dir():
        print("node or the MicroPython WebAssembly port is missing: run `make deps`",
              file=sys.stderr)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            return 1
        print("SKIPPED: the portable core's MicroPython tests (CI=true makes this a failure)")
        return 0
    proc = subprocess.run([node, str(RUNNER), str(ROOT), *portable_files()], cwd=ROOT)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
