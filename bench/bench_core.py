"""The portable core's test suite on MicroPython (WebAssembly) vs CPython, same tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import pick, row

ROOT = Path(__file__).resolve().parents[1]
REPEAT = pick(3, 1)


def _best(cmd: list[str]) -> tuple[float, str]:
    best = float("inf")
    out = ""
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        best = min(best, time.perf_counter() - t0)
        out = proc.stdout
        if proc.returncode != 0:
            raise RuntimeError("suite failed: %s" % (proc.stdout[-500:] + proc.stderr[-500:]))
    return best, out


def _cpython_runner() -> list[str]:
    # The same plain-function runner as on MicroPython, so neither side pays pytest's cost.
    code = (
        "import sys, glob, importlib\n"
        "sys.path.insert(0, '.')\n"
        "p = f = 0\n"
        "for path in sorted(glob.glob('tests/core/test_*.py')):\n"
        "    mod = importlib.import_module(path[:-3].replace('/', '.'))\n"
        "    for name in sorted(dir(mod)):\n"
        "        if name.startswith('test_') and callable(getattr(mod, name)):\n"
        "            try:\n"
        "                getattr(mod, name)(); p += 1\n"
        "            except Exception:\n"
        "                f += 1\n"
        "print('%d passed, %d failed' % (p, f))\n"
        "sys.exit(1 if f else 0)\n"
    )
    return [sys.executable, "-c", code]


def run() -> list[dict[str, object]]:
    """Time both interpreters on the whole portable suite (process start included)."""
    mp, mp_out = _best([sys.executable, "tests/micropython/run_core_tests.py"])
    cp, cp_out = _best(_cpython_runner())
    return [row("core_suite_micropython_vs_cpython", "s", mp, "cpython_same_tests", cp,
                higher_is_better=False, tests=mp_out.strip().splitlines()[-1],
                note="wall time incl. interpreter start; ratio >1 means MicroPython is slower")]
