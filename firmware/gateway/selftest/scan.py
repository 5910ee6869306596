"""Read-only walks over a state directory for the scanning checks (never follows symlinks)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

MAX_SCAN_BYTES = 4 * 1024 * 1024


def walk(root: Path) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Every entry under root (directories included): (path, relative path, lstat)."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            yield p, p.relative_to(root).as_posix(), p.lstat()


def regular_files(root: Path) -> Iterator[tuple[Path, str, os.stat_result]]:
    """Only regular files (symlinks, devices and sockets are skipped)."""
    for p, rel, st in walk(root):
        if stat.S_ISREG(st.st_mode):
            yield p, rel, st


def read_limited(path: Path, st: os.stat_result) -> bytes | None:
    """File content, or None when it is too large to scan."""
    if st.st_size > MAX_SCAN_BYTES:
        return None
    with open(path, "rb") as f:
        return f.read(MAX_SCAN_BYTES)


def limit(items: list[str], n: int = 20) -> list[str]:
    """At most n evidence lines, with a count of the rest."""
    if len(items) <= n:
        return items
    return items[:n] + [f"... and {len(items) - n} more"]
