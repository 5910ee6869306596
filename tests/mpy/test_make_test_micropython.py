"""`make test-micropython` (tests/micropython/run_core_tests.py, which `make test` runs: both
ports, ending with both counts): a failing test on a port is counted there and fails the run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, require
from tests.mpy.helpers import micropython


def test_a_failing_test_is_counted_and_fails_the_port(tmp_path: Path) -> None:
    require("micropython")
    pkg = tmp_path / "probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "test_probe.py").write_text("def test_ok():\n    pass\n\n"
                                       "def test_broken():\n    assert 1 == 2\n")
    code = ("import sys\nsys.path.insert(0, %r)\nsys.path.insert(0, %r)\n"
            "from tests.micropython import harness\n"
            "sys.exit(1 if harness.run('unix', ['probe_pkg.test_probe']) else 0)\n"
            % (str(ROOT), str(tmp_path)))
    proc = subprocess.run([micropython(), "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert "FAIL probe_pkg.test_probe::test_broken" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "unix: 1 passed, 1 failed"
