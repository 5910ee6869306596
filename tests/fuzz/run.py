"""Run the fuzz targets one after the other: ``python -m tests.fuzz.run [--seconds N] [TARGET...]``.

Each target runs in its own process (atheris owns its process) for N seconds (``FUZZ_SECONDS``,
default 600). The summary gives, per target, the engine, the inputs executed and every escape
(an exception that is not the project's own ``MamoriError``, a broken refusal property, a hang
or a memory blow-up), with the saved input to reproduce it. Exit status 1 when anything escaped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.fuzz import engine

STAT = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
DONE = re.compile(r"Done (\d+) runs in")


def _libfuzzer_findings(log: str) -> list[dict[str, Any]]:
    """Hangs, memory blow-ups and crashes libFuzzer itself reported."""
    out = []
    for marker, what in (("ERROR: libFuzzer: timeout", "timeout (input ran > 30 s)"),
                         ("ERROR: libFuzzer: out-of-memory", "out of memory"),
                         ("=== Uncaught Python exception: ===", "uncaught exception"),
                         ("ERROR: libFuzzer: deadly signal", "crash (signal)")):
        if marker in log:
            tail = log[log.index(marker):].splitlines()[:12]
            out.append({"exception": what, "message": "\n".join(tail)})
    return out


def run_target(target: str, seconds: int, kind: str, base: Path) -> dict[str, Any]:
    """Fuzz one target in a child process; its result."""
    workdir = base / ("%s-%d" % (target, int(time.time())))
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "tests.fuzz.worker", target, str(seconds), kind, str(workdir)]
    t0 = time.monotonic()
    with (workdir / "log.txt").open("w") as log:
        proc = subprocess.run(cmd, cwd=engine.ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONHASHSEED="0"),
                              timeout=seconds * 3 + 600)
    elapsed = time.monotonic() - t0
    text = (workdir / "log.txt").read_text(errors="replace")
    inputs = 0
    m = STAT.search(text) or DONE.search(text)
    if m:
        inputs = int(m.group(1))
    elif (workdir / engine.COUNT).exists():
        inputs = int(json.loads((workdir / engine.COUNT).read_text())["inputs"])
    escapes = []
    if (workdir / engine.ESCAPES).exists():
        escapes = [json.loads(line) for line in
                   (workdir / engine.ESCAPES).read_text().splitlines() if line.strip()]
    escapes += _libfuzzer_findings(text)
    if proc.returncode != 0 and not escapes:
        escapes.append({"exception": "worker exited with status %d" % proc.returncode,
                        "message": "\n".join(text.splitlines()[-12:])})
    return {"target": target, "engine": kind, "seconds": round(elapsed, 1), "inputs": inputs,
            "escapes": escapes, "workdir": str(workdir)}


def main(argv: list[str] | None = None) -> int:
    """Fuzz the named targets (all by default); print and save the summary."""
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__)
    p.add_argument("targets", nargs="*", metavar="TARGET", help=", ".join(engine.TARGETS))
    p.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "600")))
    p.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    p.add_argument("--out", type=Path, default=engine.ROOT / "build" / "fuzz" / "results.json")
    args = p.parse_args(argv)
    kind = args.engine
    if kind == "auto":
        kind = "atheris" if engine.atheris_available() else "hypothesis"
    targets = args.targets or list(engine.TARGETS)
    for t in targets:
        if t not in engine.TARGETS:
            p.error("unknown target %r (known: %s)" % (t, ", ".join(engine.TARGETS)))
    base = args.out.parent
    results = []
    for t in targets:
        res = run_target(t, args.seconds, kind, base)
        results.append(res)
        print("%-10s %-10s %7.1f s %10d inputs  %d escape(s)%s"
              % (t, kind, res["seconds"], res["inputs"], len(res["escapes"]),
                 "".join("\n    " + e["exception"] + ": " + e.get("message", "")[:160]
                         for e in res["escapes"])), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    return 1 if any(r["escapes"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
