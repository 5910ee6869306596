"""The application slot stands on the base OS its board profile declares (SR2-H-6, UK7): the
Python version, glibc and commands the profile requires are there, and every wheel the slot's
``dependencies.json`` lists is the distribution Python actually loads, at the locked version."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import firmware
from firmware.common.boardprofile import BaseOs
from firmware.core.errors import ConfigError
from firmware.gateway.selftest.checks._common import verdict
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import (
    Outcome,
    check,
    inconclusive,
    not_applicable,
)

DEPS_FILE = "dependencies.json"


def app_dir() -> Path:
    """The application slot the running firmware was loaded from (/opt/mamori on a board)."""
    return Path(firmware.__file__).resolve().parent.parent


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def base_os_problems(base: BaseOs) -> tuple[list[str], list[str]]:
    """(problems, evidence) for the running system against a profile's base_os_requires."""
    problems, evidence = [], []
    running = "%d.%d" % sys.version_info[:2]
    if running != base.python:
        problems.append(f"Python {running} runs, the profile requires {base.python}")
    else:
        evidence.append(f"Python {running} as the profile requires")
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    have = libc.split()[-1] if libc.startswith("glibc ") else ""
    if not have or _version(have) < _version(base.glibc):
        problems.append(f"glibc {have or 'unknown'}; the slot's wheels need {base.glibc}")
    else:
        evidence.append(f"glibc {have} (>= {base.glibc})")
    missing = [c for c in base.commands if not os.access(c, os.X_OK)]
    if missing:
        problems.append("base OS lacks " + ", ".join(missing) + " (packages: "
                        + ", ".join(base.packages) + ")")
    else:
        evidence.append("commands present: " + ", ".join(base.commands))
    return problems, evidence


def wheel_problems(app: Path, deps: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, evidence): each locked wheel is what Python loads, from the slot."""
    site = (app / str(deps.get("site", "site-packages"))).resolve()
    problems = []
    for w in deps.get("wheels", []):
        try:
            dist = metadata.distribution(w["name"])
        except metadata.PackageNotFoundError:
            problems.append(f"{w['name']} {w['version']} is not installed")
            continue
        where = Path(str(dist.locate_file(""))).resolve()
        if dist.version != w["version"]:
            problems.append(f"{w['name']} {dist.version} loads, the slot locks {w['version']}")
        elif where != site:
            problems.append(f"{w['name']} loads from {where}, not the slot's {site}")
    return problems, [f"{len(deps.get('wheels', []))} locked wheels load from {site} "
                      f"({deps.get('arch')}, Python {deps.get('python')})"]


@check("board.base-os", "The application slot's dependencies and the base OS it needs are there",
       requirements=["SR2-H-6", "UK7"],
       remediation="install the base OS the board profile's [base_os_requires] names, and flash "
                   "or update a slot laid out by `mamori flash image` / `mamori release payload`")
def base_os(ctx: CheckContext) -> Outcome:
    """Python, glibc and commands per the profile; locked wheels load from the slot."""
    try:
        board = ctx.board()
    except ConfigError as exc:
        return inconclusive(f"board profile unreadable: {exc}")
    base = board.base_os_requires
    if base is None:
        return not_applicable(f"board {board.name} declares no base OS (no image, no slot)")
    machine = platform.machine()
    if machine != board.cpu.arch:
        return not_applicable(f"not on the board: this CPU is {machine}, board {board.name} "
                              f"is {board.cpu.arch}")
    problems, evidence = base_os_problems(base)
    app = app_dir()
    try:
        deps = json.loads((app / DEPS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"{app / DEPS_FILE} unreadable ({exc}): the firmware does not run from "
                        "an application slot")
        deps = {}
    if deps:
        more, ev = wheel_problems(app, deps)
        problems += more
        evidence += ev
    return verdict(problems, evidence)
