"""Devices this gateway has admitted, remembered across restarts (CPython).

After a restart the status must list every device the installation has, connected or not:
``STATE_DIR/devices/known.json`` keeps, per admitted device, its transport, heartbeat interval,
service level, maker and model (no secret, no personal data). The gateway declares them to its
liveness tracker at start; one that does not come back goes offline and raises the usual alert.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from firmware.common.fsutil import atomic_write

FILE = "devices/known.json"
MAX_DEVICES = 10000
FIELDS = ("transport", "interval", "level", "maker", "model")

log = logging.getLogger("mamori.gateway")


def _valid(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("transport"), str):
        return False
    interval, level = entry.get("interval"), entry.get("level")
    return (isinstance(interval, (int, float)) and not isinstance(interval, bool)
            and 0 < float(interval) <= 86400 and level in (2, 3))


class KnownDevices:
    """The remembered devices of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / FILE
        self.devices: dict[str, dict[str, Any]] = {}
        self.dirty = False  # written by flush(), from the status loop (one write per second)

    def load(self) -> dict[str, dict[str, Any]]:
        """Read the file (a damaged one is reported and ignored: devices re-register)."""
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError) as exc:
            log.warning("known devices unreadable (%s): they will re-register", exc)
            doc = {}
        devices = doc.get("devices") if isinstance(doc, dict) else None
        self.devices = {str(k): {f: v.get(f) for f in FIELDS}
                        for k, v in (devices or {}).items() if _valid(v)} \
            if isinstance(devices, dict) else {}
        return self.devices

    def remember(self, device_id: str, transport: str, interval: float, level: int,
                 info: dict[str, Any]) -> bool:
        """Record a device; True when that changed something (flush() writes it)."""
        entry = {"transport": transport, "interval": float(interval), "level": int(level),
                 "maker": str(info.get("maker", ""))[:64], "model": str(info.get("model", ""))[:64]}
        if self.devices.get(device_id) == entry:
            return False
        if device_id not in self.devices and len(self.devices) >= MAX_DEVICES:
            return False
        self.devices[device_id] = entry
        self.dirty = True
        return True

    def forget(self, device_id: str) -> None:
        """Drop a removed device."""
        if self.devices.pop(device_id, None) is not None:
            self.dirty = True

    def pending(self) -> bytes | None:
        """The file's new content when something changed (taken on the event loop's thread)."""
        if not self.dirty:
            return None
        self.dirty = False
        return json.dumps({"format": "mamori-known-devices/1", "devices": self.devices},
                          sort_keys=True).encode()

    def write(self, data: bytes) -> None:
        """Write what pending() returned (from a worker thread: it fsyncs)."""
        try:
            atomic_write(self.path, data, 0o600, dir_mode=0o700)
        except OSError as exc:  # a full disk must not stop admission; the next change retries
            self.dirty = True
            log.warning("cannot remember devices: %s", exc)

    def flush(self) -> None:
        """Write now if anything changed."""
        data = self.pending()
        if data is not None:
            self.write(data)
