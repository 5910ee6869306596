"""monitor.rogue-and-liveness (SR2-H-4, UK10): rogue join and silent device alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core import liveness
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.selftest.checks import monitor as monitor_check
from tests.selftest.helpers import provisioned, single_check, snapshot

CID = "monitor.rogue-and-liveness"
REQS = ["SR2-H-4", "UK10"]


run, assert_fail = single_check("monitor", CID, REQS)


def test_alerts_reach_log_and_wan(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    before = snapshot(state)
    r = run(state)[CID]
    assert r.verdict == "pass", r.evidence
    ev = "\n".join(r.evidence)
    for what in ("rogue LAN join: rogue.device alert", "rogue Zigbee join: rogue.device alert",
                 "silent device: device.offline alert"):
        assert what in ev
    assert ev.count("WAN stream alerts") == 3
    assert snapshot(state) == before


def test_monitor_disabled_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(monitor_check, "monitor_services", lambda gw, lan: [])
    assert_fail(run(state), "monitoring is disabled")


def test_monitor_not_listening_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(MonitorService, "_on_event", lambda self, ev: None)
    assert_fail(run(state), "rogue LAN join: no alert was raised")


def test_absurd_liveness_factors_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(liveness, "DEFAULT_FACTORS", {2: (1000.0, 5000.0), 3: (1000.0, 5000.0)})
    res = run(state)
    assert_fail(res, "offline factor 5000 exceeds 10 intervals")
    assert_fail(res, "silent device: no alert was raised")


def test_running_gateway_without_monitor_fails(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "run").mkdir(exist_ok=True)
    (state / "run" / "status.json").write_text(json.dumps({"lan": {"port": 1}}))
    assert_fail(run(state), "no monitor service")
