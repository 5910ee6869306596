"""Staged rollout waves: sizes, stable order, automatic halt on a failing wave."""

from __future__ import annotations

from typing import Any

import pytest

from firmware.core.errors import ConfigError
from host_tools.push.waves import failure_rate, parse_waves, plan, rollout

GWS = ["gw-%03d" % i for i in range(200)]


def test_plan_sizes_and_coverage() -> None:
    waves = plan(GWS, (0.01, 0.10, 1.0), "s")
    assert [len(w) for w in waves] == [2, 18, 180]
    assert sorted(sum(waves, [])) == sorted(GWS)
    assert plan(GWS, (0.01, 0.10, 1.0), "s") == waves
    assert plan(GWS, (0.01, 0.10, 1.0), "t") != waves
    assert [len(w) for w in plan(["a", "b"], (0.01, 0.1, 1.0))] == [1, 1]


def test_parse_waves() -> None:
    assert parse_waves("1,10,100") == (0.01, 0.1, 1.0)
    for bad in ("10,1,100", "1,10", "x", "0,100"):
        with pytest.raises(ConfigError):
            parse_waves(bad)


def test_halts_when_wave_fails_and_missing_reports_count_as_failures() -> None:
    sent: list[tuple[str, Any]] = []
    bad = set(plan(GWS, (0.01, 0.10, 1.0), "2.0")[1][:5])  # 5 of 18 in wave 2 fail
    rep = rollout(GWS, {"version": "2.0"}, lambda g, m: sent.append((g, m)),
                  lambda wave: {g: g not in bad for g in wave}, max_failure=0.2)
    assert rep["halted"] and "wave 2" in rep["reason"]
    assert len(sent) == 20 and all(m["wave"] in (1, 2) for _, m in sent)
    assert failure_rate({}, ["a", "b"]) == 1.0


def test_all_waves_when_healthy() -> None:
    rep = rollout(GWS, {"version": "2.0"}, lambda g, m: None,
                  lambda wave: {g: True for g in wave})
    assert not rep["halted"] and rep["notified"] == 200 and len(rep["waves"]) == 3
