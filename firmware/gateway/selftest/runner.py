"""Run the registered checks against a state directory without ever changing it."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from firmware.core import selftest as model
from firmware.core.errors import ConfigError, MamoriError, StateError
from firmware.gateway.identity import deviceinfo
from firmware.gateway.selftest.checks import load_checks
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Check, Outcome

STARS = {2: "★★", 3: "★★★"}
# Where the signed installation profile may record the level (issue 3); first match wins.
_LEVEL_SOURCES = ("installation/profile.json", "installation.json", deviceinfo.FILE)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def resolve_level(state_dir: Path, explicit: int | None) -> int:
    """The service level to judge against: --level, else the one the installation recorded."""
    if explicit is not None:
        return model.check_level(explicit)
    for rel in _LEVEL_SOURCES:
        data = _read_json(Path(state_dir) / rel)
        level = data.get("service_level", data.get("level"))
        if level in model.LEVELS:
            return int(level)
    raise StateError("the service level of this installation is unknown",
                     "pass --level 2 or --level 3, or provision the gateway first")


def resolve_board(state_dir: Path, explicit: str | None) -> str | None:
    """The board name: --board, else the one recorded in deviceinfo.json."""
    if explicit:
        return explicit
    board = _read_json(Path(state_dir) / deviceinfo.FILE).get("board")
    return board if isinstance(board, str) and board else None


def select(checks: dict[str, Check], only: str | None) -> list[Check]:
    """All checks, or those matching --only (an exact ID or a feature prefix such as ``tls``)."""
    if not only:
        return list(checks.values())
    chosen = [c for c in checks.values() if c.id == only or c.id.startswith(only + ".")]
    if not chosen:
        raise ConfigError(f"no check with ID {only!r}", hint="known: " + ", ".join(checks))
    return chosen


def _run_one(c: Check, ctx: CheckContext) -> model.Result:
    if not c.applies(ctx.level):
        reason = (f"evidences only {STARS.get(c.min_level(), c.min_level())} requirements; "
                  f"this installation is {STARS[ctx.level]}")
        return model.Result(c.id, c.title, c.requirements, model.NOT_APPLICABLE, [],
                            c.remediation, reason)
    rerun = f"then re-run `mamori-gateway selftest --state-dir DIR --only {c.id}`"
    try:
        out = c.func(ctx)
        if not isinstance(out, Outcome):
            raise TypeError(f"check returned {type(out).__name__}, not an Outcome")
    except MamoriError as exc:
        out = Outcome(model.INCONCLUSIVE, [f"could not run: {exc.message}"],
                      (exc.hint or "remove the cause above") + "; " + rerun)
    except Exception as exc:  # a broken check must not stop the others
        out = Outcome(model.INCONCLUSIVE,
                      [f"the check itself failed ({type(exc).__name__}: {exc}): a defect of "
                       "the self-test, not a finding about the gateway"],
                      rerun + "; if it fails again, report it with this evidence")
    if out.verdict == model.INCONCLUSIVE and not out.reason:
        out.reason = "remove the cause above; " + rerun
    return model.Result(c.id, c.title, c.requirements, out.verdict, out.evidence,
                        c.remediation, out.reason)


def run_checks(state_dir: Path, level: int, board_name: str | None = None,
               only: str | None = None, boards_dir: Path | None = None,
               today: dt.date | None = None,
               options: dict[str, Any] | None = None) -> list[model.Result]:
    """Run every applicable check; each gets its own scratch area, removed afterwards."""
    live = Path(state_dir)
    if not live.is_dir():
        raise StateError(f"state directory {live} does not exist",
                         "pass the gateway's --state-dir")
    model.check_level(level)
    chosen = select(load_checks(), only)
    root = Path(tempfile.mkdtemp(prefix="mamori-selftest-"))
    results = []
    try:
        for c in chosen:
            work = root / c.id
            work.mkdir()
            ctx = CheckContext(live, level, board_name, work, boards_dir, today, options)
            try:
                results.append(_run_one(c, ctx))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return results
