"""`mamori demo --sim-devices N` runs N mutual-TLS devices, each from its own loopback address,
all online (the issue's report: it silently stopped at 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.gateway.helpers import host_cmd, online, wait_for

N = 60


@pytest.mark.serial("many simulated devices")
def test_demo_runs_n_simulated_devices_all_online(tmp_path: Path) -> None:
    state = tmp_path / "sim"
    with (tmp_path / "gateway.log").open("w") as log:
        proc = subprocess.Popen(host_cmd("demo", "--state-dir", str(state), "--sim-devices",
                                         str(N)), cwd=ROOT, stdout=log, stderr=log)
    try:
        doc = wait_for(state, lambda d: len(online(d)) >= N, timeout=180)
    finally:
        proc.terminate()
        code = proc.wait(60)
    assert code == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    ips = [d for d in doc["devices"] if d["transport"] == "ip"]
    assert len(ips) == N and doc["lan"]["sessions"] == N
    peers = {d["peer"].rsplit(":", 1)[0] for d in ips}
    if sys.platform.startswith("linux"):
        assert len(peers) == N  # one address per device, as in a real house
    assert doc["lan"]["preauth"]["unauthenticated"] == 0
