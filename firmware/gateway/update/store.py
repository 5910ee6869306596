"""Crash-safe persistence for the update agent: atomic JSON files and the state-dir layout."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def read_json(path: Path, default: Any) -> Any:
    """Read a JSON file written by write_json; `default` when it does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        raise ConfigError("update state file is unreadable: %s" % exc, str(path),
                          hint="restore the state directory or reinstall")


class Paths:
    """Where the agent keeps its state under STATE_DIR."""

    def __init__(self, state_dir: Path, board: Board) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "update"
        self.record = self.root / "state.json"
        self.floors = self.root / "floors.json"
        self.selector = self.root / "boot.json"
        self.history = self.root / "history.json"
        self.reports = self.root / "reports.jsonl"
        self.tuf = self.root / "tuf"
        self.staging = self.root / "staging" / "bundle.part"
        self.offline = self.root / "offline"
        self.lock = self.root / "lock"
        slots = board.storage.slots
        if len(slots) != 2:
            raise ConfigError("board %s does not define two A/B slots" % board.name,
                              "storage.slots")
        self.slot_paths = {"a": slots[0], "b": slots[1]}

    def slot(self, name: str) -> Path:
        """The directory of slot `name` ("a" or "b")."""
        p = Path(self.slot_paths[name])
        return p if p.is_absolute() else self.state_dir / p
