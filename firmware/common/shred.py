"""Overwrite-then-unlink of files (best effort on flash; the KEK removal makes it crypto-erase)."""

from __future__ import annotations

import os
from pathlib import Path

_CHUNK = 1 << 16


def shred(path: Path) -> bool:
    """Overwrite a regular file with zeros, fsync, unlink; symlinks are only unlinked."""
    p = Path(path)
    try:
        st = p.lstat()
    except FileNotFoundError:
        return False
    if p.is_file() and not p.is_symlink():
        fd = os.open(p, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            left = st.st_size
            zeros = b"\0" * _CHUNK
            while left > 0:
                left -= os.write(fd, zeros[:min(left, _CHUNK)])
            os.fsync(fd)
        finally:
            os.close(fd)
    p.unlink()
    return True
