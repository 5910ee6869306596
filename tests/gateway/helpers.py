"""Helpers to run a real gateway process in tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def gateway_cmd(*args: str) -> list[str]:
    """Command line of `mamori-gateway ARGS` run with this interpreter."""
    return [sys.executable, "-m", "firmware.gateway.cli.main", *args]


def host_cmd(*args: str) -> list[str]:
    """Command line of `mamori ARGS` run with this interpreter."""
    return [sys.executable, "-m", "host_tools.cli.main", *args]


def start_gateway(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    """Start the demo house (`mamori demo --state-dir DIR ARGS`) in the background.

    `mamori demo` makes the house, then becomes `mamori-gateway run --board sim` (same pid).
    """
    return subprocess.Popen(
        host_cmd("demo", "--state-dir", str(state_dir), *args),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_gateway(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """SIGTERM the gateway and wait for its clean exit; (exit code, stderr tail)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err[-3000:]


def status(state_dir: Path) -> tuple[int, dict[str, Any] | None]:
    """Run `mamori-gateway status --json`; return (exit code, parsed output or None)."""
    proc = subprocess.run(gateway_cmd("status", "--state-dir", str(state_dir), "--json"),
                          cwd=ROOT, capture_output=True, text=True)
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        return proc.returncode, None


def wait_for(state_dir: Path, predicate: Callable[[dict[str, Any]], bool],
             timeout: float = 60.0) -> dict[str, Any]:
    """Poll the status until predicate(doc) holds; fail with the last status otherwise."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        _, doc = status(state_dir)
        if doc is not None:
            last = doc
            if predicate(doc):
                return doc
        time.sleep(0.3)
    raise AssertionError("status never matched; last: %s" % json.dumps(last)[:2000])


def online(doc: dict[str, Any]) -> list[str]:
    """Ids of the devices the status lists as online."""
    return [d["id"] for d in doc.get("devices", []) if d["state"] == "online"]
