"""Shared by every benchmark: smoke-mode sizes, the row format, tool checks, best-of timing."""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from typing import Any

# MAMORI_BENCH_SMOKE=1: every benchmark at tiny sizes (CI runs it so none can silently rot).
SMOKE = os.environ.get("MAMORI_BENCH_SMOKE", "") not in ("", "0")
REQUIRED = ("name", "unit", "value", "baseline_name", "baseline", "ratio")


class Skip(Exception):
    """The benchmark cannot run here (the reason says what is missing); a failure under CI."""


def pick(full: Any, smoke: Any) -> Any:
    """The full-run size, or the smoke-mode one."""
    return smoke if SMOKE else full


def need(*tools: str) -> None:
    """Skip unless every command-line tool is installed."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise Skip("needs %s (apt-get install %s)" % (", ".join(missing), " ".join(missing)))


def row(name: str, unit: str, value: float, baseline_name: str, baseline: float,
        higher_is_better: bool = True, **extra: Any) -> dict[str, Any]:
    """One figure: measured value, same-run baseline, ratio value/baseline; `better` says which
    way is good (a rate: higher, so 0.5 is half as fast; a cost: lower, so 2 is twice the cost)."""
    ratio = value / baseline if baseline else math.inf
    return {"name": name, "unit": unit, "value": _round(value), "baseline_name": baseline_name,
            "baseline": _round(baseline), "ratio": _round(ratio),
            "better": "higher" if higher_is_better else "lower", **extra}


def _round(x: float) -> float:
    if not math.isfinite(x) or x == 0:
        return x
    digits = max(0, 3 - int(math.floor(math.log10(abs(x)))))
    return round(x, digits)


def best_of(n: int, fn: Callable[[], Any]) -> float:
    """The fastest of n timed calls, in seconds."""
    best = math.inf
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def check_row(r: dict[str, Any]) -> str:
    """Why a row is malformed ("" when it is fine): every figure needs value, baseline, ratio."""
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        return "missing " + ", ".join(missing)
    for k in ("value", "baseline", "ratio"):
        v = r[k]
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            return "%s is not a finite number: %r" % (k, v)
    if r["baseline"] <= 0:
        return "baseline is not positive: the baseline did no measurable work"
    return ""


def child_env(**extra: str) -> dict[str, str]:
    """Environment for timed child commands: bytecode caches written and used, as on an installed
    gateway (a developer shell's PYTHONDONTWRITEBYTECODE would make every start recompile)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra)
    return env
