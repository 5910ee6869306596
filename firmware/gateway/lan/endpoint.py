"""The gateway's LAN endpoint, stable across restarts (CPython).

Devices are configured with the gateway's address once, so the port must not change when the
gateway restarts. The port is, in order: ``--lan-port`` when given; else the port this
installation used before (``STATE_DIR/lan/endpoint.json``); else the board's declared device
port (``firmware/common/ports.py``) — on the sim board, which shares the developer's PC, any
free port the first time, remembered from then on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.common.fsutil import atomic_write
from firmware.common.ports import LAN_DEVICE_PORT

FILE = "lan/endpoint.json"


def remembered(state_dir: Path) -> dict[str, Any]:
    """The endpoint this installation used last ({} when none or unreadable)."""
    try:
        doc = json.loads((Path(state_dir) / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    port = doc.get("port") if isinstance(doc, dict) else None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return {}
    return {"host": str(doc.get("host", "")), "port": port}


def planned_port(state_dir: Path, board: dict[str, Any], configured: int | None) -> int:
    """The port to listen on (0: any free one, then remembered)."""
    if configured is not None:
        return configured
    last = remembered(state_dir)
    if last:
        return int(last["port"])
    return 0 if board.get("name") == "sim" else LAN_DEVICE_PORT


def remember(state_dir: Path, host: str, port: int) -> None:
    """Keep the endpoint devices were told, for the next start."""
    if remembered(state_dir) == {"host": host, "port": port}:
        return
    atomic_write(Path(state_dir) / FILE, json.dumps({"host": host, "port": port}).encode(),
                 0o644, dir_mode=0o700)
