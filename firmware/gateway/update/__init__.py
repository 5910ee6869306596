"""Gateway OTA update agent (CPython): TUF client, A/B slots, trial boot, commit or rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board


def status(state_dir: Path | str, board: Board | None = None) -> dict[str, Any]:
    """Firmware status for `mamori-gateway status --json`: version, slot, state, history."""
    from firmware.common.boards import load_board
    from firmware.common.version import software_version
    from firmware.gateway.update.blockslot import slot_store
    from firmware.gateway.update.store import Paths, read_json

    board = board or load_board("sim")
    paths = Paths(Path(state_dir), board)
    selector = read_json(paths.selector, {"booted": "a"})
    slot = str(selector.get("booted") or selector.get("default") or "a")
    info = slot_store(paths, board).info(slot)
    record = read_json(paths.record, {"state": "idle"})
    floors = read_json(paths.floors, {})
    return {
        # No slot written by an update yet: the factory image runs this software.
        "version": info["version"] if info else software_version(),
        "source": "update" if info else "factory image",
        "slot": slot,
        "state": record.get("state", "idle"),
        "version_floor": floors.get("version", ""),
        "history": read_json(paths.history, []),
    }
