"""Run every benchmark in bench/ and print one JSON object per measured figure.

Each bench_<area>.py exposes run() -> list[dict] with name, unit, value, baseline_name,
baseline and ratio, the baseline measured in the same run. `make bench` runs them all;
`make bench ONLY=name` runs the modules whose name contains `name`.
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


def main() -> int:
    """Run the benchmarks; exit non-zero if any of them crashed."""
    sys.path.insert(0, str(ROOT))
    only = os.environ.get("ONLY", "")
    failed = 0
    for path in sorted((ROOT / "bench").glob("bench_*.py")):
        if only and only not in path.stem:
            continue
        t0 = time.monotonic()
        try:
            mod = importlib.import_module("bench." + path.stem)
            results = mod.run()
        except Exception:
            failed += 1
            print(json.dumps({"name": path.stem, "error": traceback.format_exc(limit=3)}))
            continue
        for r in results:
            r.setdefault("module", path.stem)
            r.setdefault("wall_s", round(time.monotonic() - t0, 2))
            print(json.dumps(r, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
