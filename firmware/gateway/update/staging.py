"""The staging area: the downloaded bundle is re-verified against its signed chunk hashes right
before the slot write, and every refusal discards the whole area (bundle and slot work files)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from firmware.core.errors import IntegrityError, ProtocolError
from firmware.core.update.chunks import chunk_count, chunk_span, verify_chunk
from firmware.gateway.update.store import Paths, fsync_dir


def verify_staged(bundle: Path, target: dict[str, Any]) -> None:
    """Raise IntegrityError unless the staged bundle is, chunk for chunk, the signed release."""
    length, size, hashes = int(target["length"]), int(target["chunk_size"]), target["chunks"]
    try:
        with open(bundle, "rb") as f:
            for i in range(chunk_count(length, size)):
                verify_chunk(i, f.read(chunk_span(i, length, size)[1]), hashes, length, size)
            if f.read(1):
                raise IntegrityError("the staged bundle is longer than signed")
    except OSError as exc:
        raise IntegrityError("the staged bundle is unreadable: %s" % exc.strerror,
                             "it is discarded; the next run downloads it again") from exc
    except IntegrityError as exc:
        raise IntegrityError("the staged bundle no longer matches its signed hashes (%s)" % exc,
                             "corrupted on this gateway's storage: discarded, the next run "
                             "downloads it again") from exc
    except ProtocolError as exc:
        raise IntegrityError("the staged bundle is shorter than signed (%s)" % exc,
                             "discarded; the next run downloads it again") from exc


def discard(paths: Paths, slots: Any, slot: str = "") -> None:
    """Remove the staged bundle and any half-written slot work (idempotent)."""
    staging = paths.staging.parent
    if staging.exists():
        shutil.rmtree(staging, ignore_errors=True)
        fsync_dir(staging.parent)
    for name in (slot,) if slot else ("a", "b"):
        drop = getattr(slots, "discard", None)
        if drop is not None:
            drop(name)
