"""Shared helpers for the access-log tests: build a log, edit its frames."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import list_segments
from firmware.common.accesslog.reader import verify
from firmware.common.accesslog.source import open_source
from firmware.core.accesslog import framing
from firmware.gateway.accesslog.store import AccessLogStore

CANARY = "canary-Haruko-Yamada-090-1234-5678"


def build_log(state: Path, records: int = 60, **opts: Any) -> AccessLogStore:
    """A closed log with several segments and checkpoints."""
    opts.setdefault("segment_bytes", 4096)
    opts.setdefault("budget_bytes", 1 << 20)
    opts.setdefault("checkpoint_every", 5)
    store = AccessLogStore(state, **opts)
    store.open()
    for i in range(records):
        store.append({"kind": "command", "source": "owner-app", "principal": "alice",
                      "action": "unlock", "target": "lock-%d" % (i % 3), "result": "ok",
                      "params": {"note": CANARY, "i": i}})
    store.close()
    return store


def copy_state(src: Path, dst: Path) -> Path:
    """A copy of a state dir to tamper with."""
    shutil.copytree(src, dst)
    return dst


def segments(state: Path) -> list[Path]:
    """Segment files of a state dir, oldest first."""
    return [p for _n, p in list_segments(state / "accesslog")]


def frames_of(path: Path) -> list[tuple[int, bytes, bytes]]:
    """(offset, type, body) of every frame of a segment."""
    frames, _end, trouble = framing.scan(path.read_bytes())
    assert trouble is None
    return frames


def rewrite(path: Path, frames: list[tuple[bytes, bytes]]) -> None:
    """Write a segment from (type, body) frames with valid CRCs."""
    path.write_bytes(b"".join(framing.encode_frame(t, b) for t, b in frames))


def report(path: Path, **kw: Any) -> dict[str, Any]:
    """Verify a log and return the report."""
    return verify(open_source(path, **kw))
