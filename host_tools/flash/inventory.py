"""What was flashed, appended as JSON lines to the site's inventory (never a secret)."""

from __future__ import annotations

import datetime
import getpass
import json
import os
from pathlib import Path

from host_tools.flash.errors import TargetError

INVENTORY_NAME = "flash-inventory.jsonl"


def operator_name(explicit: str | None = None) -> str:
    """Who is flashing: --operator, else $MAMORI_OPERATOR, else the login name."""
    if explicit:
        return explicit
    env = os.environ.get("MAMORI_OPERATOR")
    if env:
        return env
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def record(site: Path, entry: dict) -> Path:
    """Append ENTRY (stamped with the UTC time) to SITE/flash-inventory.jsonl; fsync it."""
    if not site.is_dir():
        raise TargetError("site directory %s does not exist" % site,
                          "create it with `mamori provision init-site DIR`")
    row = dict(entry)
    row.setdefault("time", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    path = site / INVENTORY_NAME
    line = json.dumps(row, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read(site: Path) -> list[dict]:
    """Every record in the site's flash inventory."""
    path = site / INVENTORY_NAME
    if not path.exists():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
