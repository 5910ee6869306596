"""Scratch copies of a live state directory: everything a check may change, no live file.

A running gateway keeps sockets, locks and open databases in its state directory. A copy made
while it runs must not try to copy a socket (``[Errno 6]``), must not carry the gateway's lock
or pid (a scratch service would think the gateway runs there), and must not tear an SQLite
database that is being written: databases are copied through SQLite's online backup API (a
consistent snapshot, WAL included), their ``-wal``/``-shm``/``-journal`` sidecars left out.
Files that vanish while the copy runs (atomic renames) are simply not there.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import urllib.parse
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
# Files that only mean something to the process that holds them.
LIVE_FILES = {"gateway.lock", "gateway.pid", ".lock"}
BUSY_TIMEOUT_S = 10.0


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def _live_only(name: str) -> bool:
    """Lock and pid files, and the hidden temp file of an atomic write in progress."""
    if name in LIVE_FILES or name.endswith(".lock") or name.endswith(".pid"):
        return True
    return name.startswith(".") and name.endswith(".tmp")


def _sidecar(path: Path) -> bool:
    for suffix in SQLITE_SIDECARS:
        if path.name.endswith(suffix) and path.with_name(path.name[:-len(suffix)]).exists():
            return True
    return False


def _backup_sqlite(src: Path, dest: Path) -> None:
    uri = "file:%s?mode=ro" % urllib.parse.quote(str(src))
    source = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        target = sqlite3.connect(dest)
        try:
            source.backup(target)
        finally:
            target.close()
    finally:
        source.close()
    os.chmod(dest, stat.S_IMODE(src.stat().st_mode))


def _copy_file(src: Path, dest: Path, skipped: list[str], rel: str) -> None:
    try:
        if _is_sqlite(src):
            _backup_sqlite(src, dest)
        else:
            shutil.copy2(src, dest, follow_symlinks=False)
    except FileNotFoundError:
        skipped.append(rel + " (vanished while copying)")
    except sqlite3.Error as exc:
        skipped.append("%s (database not copied: %s)" % (rel, exc))


def copy_state(live: Path, dest: Path) -> list[str]:
    """Copy ``live`` to ``dest`` (modes kept) without its live files; return what was left out.

    Left out: sockets, FIFOs and device nodes, lock and pid files, temp files of atomic writes
    in progress, and SQLite sidecar files (the database itself is a consistent snapshot).
    """
    skipped: list[str] = []
    _copy_dir(Path(live), Path(dest), "", skipped)
    return skipped


def _copy_dir(src: Path, dest: Path, rel: str, skipped: list[str]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copystat(src, dest, follow_symlinks=False)
    try:
        entries = list(os.scandir(src))
    except FileNotFoundError:
        skipped.append((rel or ".") + " (vanished while copying)")
        return
    for entry in sorted(entries, key=lambda e: e.name):
        path = Path(entry.path)
        sub = rel + "/" + entry.name if rel else entry.name
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(path), dest / entry.name)
        elif stat.S_ISDIR(mode):
            _copy_dir(path, dest / entry.name, sub, skipped)
        elif not stat.S_ISREG(mode):
            skipped.append(sub + " (socket, FIFO or device: live only)")
        elif _live_only(entry.name) or _sidecar(path):
            skipped.append(sub + " (live file)")
        else:
            _copy_file(path, dest / entry.name, skipped, sub)
    # Directory times as in the source (copying files into it changed them).
    shutil.copystat(src, dest, follow_symlinks=False)
