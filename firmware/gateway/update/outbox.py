"""The OTA alert outbox (update/reports.jsonl): alerts survive power cuts and reach the up-link.

The agent appends each alert once (keyed by its event id, so a replayed step adds nothing) and,
when it runs inside the gateway, forwards the outbox at once; otherwise the OTA service forwards
it at its next start. Forwarded lines move to reports.sent.jsonl.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from firmware.core.events import Event


def pending(path: Path) -> list[Event]:
    """The alerts written but not yet forwarded."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [Event.from_dict(json.loads(line)) for line in text.splitlines() if line.strip()]


def append_once(path: Path, event: Event) -> bool:
    """Append `event` (durably) unless an alert with its id is already waiting; True if added."""
    if event.event_id and any(e.event_id == event.event_id for e in pending(path)):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return True


def forward(path: Path, emit: Callable[[Event], object]) -> int:
    """Emit every waiting alert, then move them to reports.sent.jsonl; returns how many."""
    events = pending(path)
    if not path.exists():
        return 0
    for event in events:
        emit(event)
    sent = path.with_name("reports.sent.jsonl")
    with open(sent, "a", encoding="utf-8") as f:
        f.write(path.read_text(encoding="utf-8"))
    os.unlink(path)
    return len(events)
