"""Durable file writes shared by the gateway and the host tools (CPython)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make a rename inside directory `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of data to fd (os.write may write fewer bytes than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path: Path, data: bytes, mode: int = 0o600, dir_mode: int = 0o700,
                 sync_dir: bool = False) -> None:
    """Replace `path` with `data` atomically: temp file with `mode`, fsync, rename.

    A crash leaves either the old or the new content, never a mix; the temp file is hidden
    (a leading dot) and created with its final permissions, so a secret is never readable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    tmp = path.with_name("." + path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # Full disk, read-only filesystem, I/O error: the old file stays, no temp file remains.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        fsync_dir(path.parent)


@contextlib.contextmanager
def complete_or_absent(path: Path, enabled: bool = True) -> Iterator[Path]:
    """Yield a temporary name beside `path` to write; rename it to `path` only when the block
    ends normally. Ctrl-C, a full disk or an error leave no partial file under the final name
    (and no temporary file). With `enabled` False (a device node), `path` itself is yielded."""
    path = Path(path)
    if not enabled:
        yield path
        return
    tmp = path.with_name(".%s.partial-%d" % (path.name, os.getpid()))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(path.parent if str(path.parent) else Path("."))


def check_output(flag: str, path: Path | None) -> None:
    """Refuse an output path that cannot be written, before a long piece of work."""
    from firmware.core.errors import ConfigError

    if path is None:
        return
    if path.is_dir():
        raise ConfigError("%s is a folder" % path, source=flag, hint="name a file to write")
    if not path.parent.is_dir():
        raise ConfigError("folder %s does not exist" % path.parent, source=flag,
                          hint="create it first, or name a file in an existing folder")


def write_output(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write a report or export the user asked for: complete under its name, or not at all."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with complete_or_absent(Path(path)) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            write_all(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
