"""The resale marker (``resale.json``): whether a resale reset is under way or awaits its update.

One small file several rooms read or clear, so it lives below them: the owner room's resale
reset (``owner/resale.py``) writes it, the composition root holds every household service while
it exists, the admin API reports it, and the OTA agent clears it once an update to the latest
release has committed (R2-9).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.common.fsutil import fsync_dir

MARKER = "resale.json"
MARKER_FORMAT = "mamori-resale/2"
RESETTING, RESOLD = "resetting", "resold"


def marker(state_dir: Path) -> dict[str, Any] | None:
    """The resale marker, or None when no resale reset has started."""
    path = Path(state_dir) / MARKER
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        doc = None
    if not isinstance(doc, dict) or doc.get("state") not in (RESETTING, RESOLD):
        # Unreadable counts as a reset under way: failing closed finishes it.
        return {"format": MARKER_FORMAT, "state": RESETTING, "step": "marked", "damaged": True}
    return doc


def resale_pending(state_dir: Path) -> bool:
    """Whether the service must stay disabled (a reset under way or awaiting its update)."""
    return marker(state_dir) is not None


def clear_marker(state_dir: Path, installed_version: str) -> dict[str, Any]:
    """Called by the OTA agent once an update to the latest release has committed; a reset
    that has not finished is never cleared."""
    doc = marker(state_dir)
    if doc is None:
        return {"cleared": False}
    if doc.get("state") != RESOLD:
        return {"cleared": False, "reason": "the resale reset has not finished"}
    path = Path(state_dir) / MARKER
    path.unlink()
    fsync_dir(path.parent)
    return {"cleared": True, "version": installed_version, "reset_at": doc.get("reset_at")}
