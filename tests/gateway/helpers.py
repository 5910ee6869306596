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


def log_path(state_dir: Path) -> Path:
    """Where a test gateway's stderr (its JSON log lines) goes: beside its state directory."""
    return Path(state_dir).parent / (Path(state_dir).name + ".gateway.log")


def spawn_gateway(cmd: list[str], state_dir: Path, **kw: Any) -> subprocess.Popen[str]:
    """Start a gateway command with its stderr in `log_path(state_dir)` (a pipe nobody reads
    would fill up and block the gateway); `proc.log` names the file."""
    path = log_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True,
                                **kw)
    proc.log = path  # type: ignore[attr-defined]
    return proc


def start_gateway(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    """Start the demo house (`mamori demo --state-dir DIR ARGS`) in the background.

    `mamori demo` makes the house, then becomes `mamori-gateway run --board sim` (same pid).
    """
    return spawn_gateway(host_cmd("demo", "--state-dir", str(state_dir), *args), state_dir)


def logged_events(proc: subprocess.Popen[str], kind: str | None = None) -> list[dict[str, Any]]:
    """The events a gateway started by `spawn_gateway` logged so far (with their principals and
    reasons, which the status file leaves out), optionally of one kind."""
    out = []
    for line in Path(proc.log).read_text(errors="replace").splitlines():  # type: ignore[attr-defined]
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        ev = doc.get("event") if isinstance(doc, dict) else None
        if isinstance(ev, dict) and (kind is None or ev.get("kind") == kind):
            out.append(ev)
    return out


def wait_logged(proc: subprocess.Popen[str],
                predicate: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 30.0) -> list[dict[str, Any]]:
    """Poll the gateway's logged events until predicate(events) holds; fail with their kinds."""
    deadline = time.monotonic() + timeout
    while True:
        evs = logged_events(proc)
        if predicate(evs):
            return evs
        if time.monotonic() > deadline:
            raise AssertionError("log never matched; kinds: %s" % [e.get("kind") for e in evs])
        time.sleep(0.1)


def stop_gateway(proc: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    """SIGTERM the gateway and wait for its clean exit; (exit code, stderr tail)."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log = getattr(proc, "log", None)
    err = Path(log).read_text(errors="replace") if log else (proc.communicate()[1] or "")
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
