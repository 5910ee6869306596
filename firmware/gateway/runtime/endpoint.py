"""The gateway's LAN endpoints, stable across restarts (CPython).

Devices (and the installer's bookmarks) are given the gateway's address once, so a port must
not change when the gateway restarts. A port is, in order: the one given on the command line
(``--lan-port``, ``--admin-port``); else the one this installation used before
(``STATE_DIR/lan/endpoint.json``, ``STATE_DIR/lan/admin-endpoint.json``); else the board's
declared port (``firmware/common/ports.py``) — on the sim board, which shares the developer's
PC, any free port the first time, remembered from then on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT

FILE = "lan/endpoint.json"
ADMIN_FILE = "lan/admin-endpoint.json"
FILES = {"lan": FILE, "admin": ADMIN_FILE}
DECLARED = {"lan": LAN_DEVICE_PORT, "admin": ADMIN_HTTPS_PORT}


def remembered(state_dir: Path, name: str = "lan") -> dict[str, Any]:
    """The endpoint this installation used last ({} when none or unreadable)."""
    try:
        doc = json.loads((Path(state_dir) / FILES[name]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    port = doc.get("port") if isinstance(doc, dict) else None
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        return {}
    return {"host": str(doc.get("host", "")), "port": port}


def planned_port(state_dir: Path, board: Board, configured: int | None,
                 name: str = "lan") -> int:
    """The port to listen on (0: any free one, then remembered)."""
    if configured is not None:
        return configured
    last = remembered(state_dir, name)
    if last:
        return int(last["port"])
    return 0 if board.is_sim else DECLARED[name]


def remember(state_dir: Path, host: str, port: int, name: str = "lan") -> None:
    """Keep the endpoint devices were told, for the next start."""
    if remembered(state_dir, name) == {"host": host, "port": port}:
        return
    atomic_write(Path(state_dir) / FILES[name],
                 json.dumps({"host": host, "port": port}).encode(), 0o644, dir_mode=0o700)
