"""Run every benchmark in bench/ and print one JSON line per measured figure.

Each bench_<area>.py exposes run() -> list[dict]; each dict is one figure with name, unit,
value (measured), baseline_name, baseline (the same work done by a bare tool or loop in the same
run) and ratio = value / baseline (`better` says whether higher or lower is good).
`make bench` runs them all; `make bench ONLY=name` runs the modules whose name contains `name`;
`make bench-smoke` (MAMORI_BENCH_SMOKE=1) runs every one at tiny sizes, as CI does.
Exit status: non-zero when a benchmark crashed, printed a malformed figure, or (under CI=true)
could not run.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_module(stem: str) -> int:
    from bench.common import SMOKE, Skip, check_row

    t0 = time.monotonic()
    try:
        results = importlib.import_module("bench." + stem).run()
    except Skip as exc:
        print(json.dumps({"module": stem, "skipped": str(exc)}), flush=True)
        return 1 if os.environ.get("CI") == "true" else 0
    except Exception:
        print(json.dumps({"module": stem, "error": traceback.format_exc(limit=4)}), flush=True)
        return 1
    bad = 0 if results else 1
    if not results:
        print(json.dumps({"module": stem, "error": "no figures"}), flush=True)
    for r in results:
        r.setdefault("module", stem)
        r.setdefault("wall_s", round(time.monotonic() - t0, 2))
        if SMOKE:
            r["smoke"] = True
        problem = check_row(r)
        if problem:
            r["error"] = problem
            bad += 1
        print(json.dumps(r, sort_keys=True), flush=True)
    return bad


def main() -> int:
    """Run the benchmarks; exit non-zero if any of them failed."""
    sys.path.insert(0, str(ROOT))
    only = os.environ.get("ONLY", "")
    failed = 0
    for path in sorted((ROOT / "bench").glob("bench_*.py")):
        if only and only not in path.stem:
            continue
        failed += 1 if _run_module(path.stem) else 0
    if failed:
        print("%d benchmark module(s) failed" % failed, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
