"""Streaming file hashes for releases: whole-file SHA-256 and one SHA-256 per chunk.

The release tool computes them at publication; the gateway recomputes them to prove the
running image equals its signed target.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

READ = 1024 * 1024


def file_sha256(path: Path) -> str:
    """Streaming SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            block = f.read(READ)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def chunk_hashes(path: Path, chunk_size: int) -> tuple[int, str, list[str]]:
    """(length, whole-file sha256, per-chunk sha256 list) in one streaming pass."""
    whole = hashlib.sha256()
    chunks: list[str] = []
    length = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(chunk_size)
            if not block:
                break
            whole.update(block)
            chunks.append(hashlib.sha256(block).hexdigest())
            length += len(block)
    return length, whole.hexdigest(), chunks
