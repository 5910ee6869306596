"""The sim gateway runs, lists its simulated devices, and shuts down cleanly."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.gateway.helpers import (
    gateway_cmd,
    online,
    start_gateway,
    status,
    stop_gateway,
    wait_for,
)


def test_sim_gateway_lists_three_devices_online_and_exits_zero(tmp_path: Path) -> None:
    proc = start_gateway(tmp_path)
    try:
        doc = wait_for(tmp_path, lambda d: len(online(d)) >= 3)
        for dev in doc["devices"]:
            assert {"id", "transport", "state"} <= set(dev)
        assert doc["gateway"]["running"] is True
        assert doc["lan"]["port"] > 0
    finally:
        code, err = stop_gateway(proc)
    assert code == 0, err
    code, doc = status(tmp_path)
    assert code == 3 and doc is not None and doc["gateway"]["state"] == "stopped"


def test_duration_stops_the_gateway_by_itself(tmp_path: Path) -> None:
    proc = subprocess.run(gateway_cmd("run", "--board", "sim", "--state-dir", str(tmp_path),
                                      "--duration", "0.5"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # loops that end because the gateway stops are not failures (no alert, no restart)
    assert "task.failed" not in proc.stderr and "supervised task" not in proc.stderr
    code, doc = status(tmp_path)
    assert code == 3 and doc is not None and doc["gateway"]["state"] == "stopped"


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    proc = start_gateway(tmp_path)
    try:
        wait_for(tmp_path, lambda d: len(online(d)) >= 1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert not (tmp_path / "run" / "gateway.pid").exists()


def test_second_gateway_on_same_state_dir_refused(tmp_path: Path) -> None:
    proc = start_gateway(tmp_path)
    try:
        wait_for(tmp_path, lambda d: d.get("gateway", {}).get("running") is True)
        second = subprocess.run(gateway_cmd("run", "--board", "sim", "--state-dir",
                                            str(tmp_path), "--duration", "1"),
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_status_without_gateway_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run(gateway_cmd("status", "--state-dir", str(tmp_path)),
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert "no gateway status" in proc.stderr and "mamori-gateway run" in proc.stderr


def test_bad_arguments_refused(tmp_path: Path) -> None:
    for args in (["--board", "toaster"], ["--board", "sim", "--duration", "-1"]):
        proc = subprocess.run(gateway_cmd("run", "--state-dir", str(tmp_path), *args),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("error: ")
