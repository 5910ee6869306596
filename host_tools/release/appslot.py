"""The application slot of a Linux board: what ``/opt/mamori`` holds, in an image and in a
release payload's ``app/`` alike, so an OTA update replaces the dependencies with the code.

Layout: ``firmware/`` (the firmware sources), ``site-packages/`` (every wheel of the board's lock,
unpacked), ``dependencies.json`` (the lock it was laid out from: name, version, SHA-256 per
wheel, the architecture and the Python version).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from host_tools.release import wheels
from host_tools.release.wheels import ROOT, DependencyError

SITE = "site-packages"
DEPS_FILE = "dependencies.json"
DEPS_FORMAT = "mamori-deps/1"
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def manifest(board: Board, lock: wheels.Lock) -> dict[str, Any]:
    """What dependencies.json records for BOARD's lock."""
    return {"format": DEPS_FORMAT, "arch": lock.arch, "python": lock.python,
            "glibc": lock.glibc, "lock": lock.path.name, "lock_sha256": lock.sha256,
            "site": SITE, "wheels": wheels.describe(lock),
            "base_os_requires": board.to_dict().get("base_os_requires")}


def lay_out(board: Board, dest: Path, source: Path = ROOT) -> dict[str, Any]:
    """Write BOARD's application slot into DEST (firmware, unpacked wheels, dependencies.json)."""
    lock = wheels.lock_for(board)
    got = wheels.fetch(lock)
    shutil.copytree(source / "firmware", dest / "firmware", ignore=IGNORE)
    wheels.unpack(got, lock, dest / SITE)
    deps = manifest(board, lock)
    (dest / DEPS_FILE).write_text(json.dumps(deps, indent=1, sort_keys=True) + "\n")
    return deps


def check_app(board: Board, app: Path) -> dict[str, Any]:
    """The dependencies a release's ``app/`` carries; refuse one that does not fit BOARD."""
    path = app / DEPS_FILE
    try:
        deps = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DependencyError("the release's app/ carries no %s: its Python dependencies are "
                          "missing" % DEPS_FILE,
                          "lay the payload out with `mamori release payload --board %s`"
                          % board.name)
    except (OSError, ValueError) as exc:
        raise DependencyError("the release's app/%s is unreadable: %s" % (DEPS_FILE, exc))
    if not isinstance(deps, dict) or deps.get("format") != DEPS_FORMAT:
        raise DependencyError("the release's app/%s is not %s" % (DEPS_FILE, DEPS_FORMAT))
    python = board.base_os_requires.python if board.base_os_requires else None
    if deps.get("arch") != board.cpu.arch or deps.get("python") != python:
        raise DependencyError("the release's wheels are for %s / Python %s, board %s runs %s / "
                          "Python %s" % (deps.get("arch"), deps.get("python"), board.name,
                                         board.cpu.arch, python),
                          "publish a payload laid out for this board")
    missing = [w["name"] for w in deps.get("wheels", [])
               if not any((app / SITE).glob(_dist_info(w["name"], w["version"])))]
    if not (app / SITE).is_dir() or missing:
        raise DependencyError("the release's app/%s lacks %s" % (SITE, ", ".join(missing) or
                                                             "everything"),
                          "lay the payload out with `mamori release payload`")
    return deps


def _dist_info(name: str, version: str) -> str:
    """Glob for a distribution's .dist-info directory (names normalised per the wheel spec)."""
    return "%s-%s.dist-info" % (name.replace("-", "[-_]"), version)
