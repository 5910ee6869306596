"""The release history of a repository: what was released when, by whom, for which boards."""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from pathlib import Path
from typing import Any


def who() -> str:
    """The operator doing the release (user@host)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "uid%d" % os.getuid()
    return "%s@%s" % (user, socket.gethostname())


def append(repo: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Append one entry (time and operator added) to REPO/history.jsonl."""
    row = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "by": who()}
    row.update(entry)
    with open(repo / "history.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return row


def read(repo: Path) -> list[dict[str, Any]]:
    """Every history entry, oldest first."""
    path = repo / "history.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows
