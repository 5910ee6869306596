"""`make bench` keeps working: the OTA benchmark runs end to end in smoke mode and every figure
carries a measured value, a same-run baseline and their ratio; malformed figures fail the run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from bench.common import check_row, row
from tests.conftest import ROOT, require


def test_ota_benchmark_runs_and_prints_complete_figures() -> None:
    require("openssl")
    require("curl")
    env = dict(os.environ, MAMORI_BENCH_SMOKE="1", ONLY="bench_ota")
    proc = subprocess.run([sys.executable, "bench/run.py"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    names = {r["name"] for r in rows}
    assert {"ota_verify_16MiB", "ota_install_e2e_16MiB", "ota_agent_peak_rss"} <= names, names
    for r in rows:
        assert check_row(r) == "" and r["smoke"] is True, r


def test_malformed_figures_are_caught() -> None:
    good = row("x", "MiB/s", 10.0, "bare", 20.0)
    assert check_row(good) == "" and good["ratio"] == 0.5
    assert "missing baseline" in check_row({k: v for k, v in good.items() if k != "baseline"})
    assert "not a finite number" in check_row(dict(good, ratio=math.nan))
    assert "not a finite number" in check_row(dict(good, value="fast"))
    assert "not positive" in check_row(dict(good, baseline=0))
