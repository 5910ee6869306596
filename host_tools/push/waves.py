"""Staged rollout waves (pure logic): 1% / 10% / 100%, halted when a wave fails too often."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

from firmware.core.errors import ConfigError

DEFAULT_WAVES = (0.01, 0.10, 1.0)
DEFAULT_MAX_FAILURE = 0.2


def parse_waves(text: str) -> tuple[float, ...]:
    """"1,10,100" -> (0.01, 0.1, 1.0); must rise strictly and end at 100."""
    try:
        vals = tuple(float(x) / 100.0 for x in text.split(","))
    except ValueError:
        raise ConfigError("waves must be percentages like 1,10,100", field="--waves")
    if not vals or vals[-1] != 1.0 or any(b <= a for a, b in zip(vals, vals[1:], strict=False)) \
            or vals[0] <= 0:
        raise ConfigError("waves must rise strictly and end at 100", field="--waves")
    return vals


def plan(gateways: Sequence[str], fractions: Sequence[float] = DEFAULT_WAVES,
         seed: str = "") -> list[list[str]]:
    """Split gateways into waves: a stable pseudo-random order, cumulative fractions, >=1 each."""
    order = sorted(set(gateways),
                   key=lambda g: hashlib.sha256((seed + "\0" + g).encode()).hexdigest())
    waves: list[list[str]] = []
    done = 0
    for frac in fractions:
        upto = max(done + 1, math.ceil(frac * len(order))) if done < len(order) else done
        upto = min(upto, len(order))
        if upto > done:
            waves.append(order[done:upto])
        done = upto
    return waves


def failure_rate(results: dict[str, bool], wave: Sequence[str]) -> float:
    """Share of a wave that failed; gateways that did not report count as failed."""
    if not wave:
        return 0.0
    failed = sum(1 for g in wave if not results.get(g, False))
    return failed / len(wave)


def rollout(gateways: Sequence[str], message: dict[str, Any],
            publish: Callable[[str, dict[str, Any]], None],
            results: Callable[[list[str]], dict[str, bool]],
            fractions: Sequence[float] = DEFAULT_WAVES,
            max_failure: float = DEFAULT_MAX_FAILURE, seed: str = "") -> dict[str, Any]:
    """Run the waves: notify each wave, wait for its results, stop when it fails too often."""
    report: dict[str, Any] = {"waves": [], "halted": False, "notified": 0}
    for i, wave in enumerate(plan(gateways, fractions, seed or str(message.get("version")))):
        for g in wave:
            publish(g, dict(message, wave=i + 1))
        report["notified"] += len(wave)
        res = results(wave)
        rate = failure_rate(res, wave)
        report["waves"].append({"wave": i + 1, "size": len(wave), "failure_rate": rate,
                                "failed": sorted(g for g in wave if not res.get(g, False))})
        if rate > max_failure:
            report["halted"] = True
            report["reason"] = "wave %d failure rate %.0f%% > %.0f%%" % (
                i + 1, rate * 100, max_failure * 100)
            break
    return report
