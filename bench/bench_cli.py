"""Cold start of the commands people and scripts run most, against a bare interpreter start.

Each command is a fresh process (wall time from spawn to exit, best of ROUNDS, interleaved with
the baseline so load from other work hits both alike): `mamori-gateway status --json` on the
state dir of a gateway that ran (its status file present), `mamori-gateway tuf-client --help`
and `mamori --help`. Baseline: `python3 -c 'import json'` with the same interpreter (the venv's),
the least any Python command costs. One warm-up run first (bytecode caches, page cache).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import child_env, pick, row

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = pick(7, 1)
BIN = Path(sys.executable).parent


def _cmd(name: str) -> str:
    path = BIN / name
    if not path.exists():
        raise RuntimeError("%s is not installed in %s (run `make deps`)" % (name, BIN))
    return str(path)


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, env=child_env())
    dt = time.perf_counter() - t0
    if "status" in cmd and proc.returncode == 3:  # "not running": the gateway has stopped
        json.loads(proc.stdout)
    elif proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd[:3]), proc.stderr.decode()[-400:]))
    return dt


def _ran_gateway(state: Path) -> None:
    """A sim gateway that ran briefly, so `status` reads a real status file."""
    proc = subprocess.run([_cmd("mamori-gateway"), "run", "--board", "sim", "--state-dir",
                           str(state), "--duration", "1"], cwd=ROOT, capture_output=True,
                          timeout=120, env=child_env())
    if not (state / "run" / "status.json").is_file():
        raise RuntimeError("the sim gateway wrote no status file: %s"
                           % proc.stderr.decode()[-400:])


def run() -> list[dict[str, Any]]:
    """Best-of wall times of the three commands and the bare interpreter start."""
    root = Path(tempfile.mkdtemp(prefix="mamori-bench-cli-"))
    state = root / "state"  # the sim run puts its demo site beside the state dir: inside root
    try:
        _ran_gateway(state)
        cases = {
            "cli_cold_start_gateway_status_json": [_cmd("mamori-gateway"), "status", "--json",
                                                   "--state-dir", str(state)],
            "cli_cold_start_gateway_tuf_client_help": [_cmd("mamori-gateway"), "tuf-client",
                                                       "--help"],
            "cli_cold_start_mamori_help": [_cmd("mamori"), "--help"],
        }
        base_cmd = [sys.executable, "-c", "import json"]
        best = {name: float("inf") for name in cases}
        base = float("inf")
        for cmd in cases.values():  # warm-up: bytecode caches written, files in the page cache
            _wall(cmd)
        for _ in range(ROUNDS):
            base = min(base, _wall(base_cmd))
            for name, cmd in cases.items():
                best[name] = min(best[name], _wall(cmd))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [row(name, "s", best[name], "python3 -c 'import json' (same interpreter)", base,
                higher_is_better=False, rounds=ROUNDS, command=" ".join(
                    Path(c).name if i == 0 else c for i, c in enumerate(cases[name][:3])),
                goal="ratio <= 6")
            for name in cases]


if __name__ == "__main__":
    for r in run():
        print(json.dumps(r))
