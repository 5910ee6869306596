"""OtaService: shows firmware version/slot/history in status and forwards rollback reports."""

from __future__ import annotations

import json
import os
from typing import Any

from firmware.core.events import Event
from firmware.gateway.runtime import Service
from firmware.gateway.update import status
from firmware.gateway.update.store import Paths


class OtaService(Service):
    """Firmware status (`firmware.version`, `firmware.slot`, history) and rollback reports."""

    name = "firmware"

    async def start(self) -> None:
        """Forward rollback reports written by `mamori-gateway update` to the platform."""
        if len(self.gw.board.get("storage", {}).get("slots", [])) != 2:
            return
        paths = Paths(self.gw.state_dir, self.gw.board)
        if not paths.reports.exists():
            return
        sent = paths.reports.with_name("reports.sent.jsonl")
        for line in paths.reports.read_text(encoding="utf-8").splitlines():
            if line.strip():
                self.gw.emit(Event.from_dict(json.loads(line)))
        with open(sent, "a", encoding="utf-8") as f:
            f.write(paths.reports.read_text(encoding="utf-8"))
        os.unlink(paths.reports)

    def status(self) -> dict[str, Any]:
        """Firmware version, running slot, update state and install history."""
        if len(self.gw.board.get("storage", {}).get("slots", [])) != 2:
            return {"version": "", "slot": "", "history": []}
        return status(self.gw.state_dir, self.gw.board)
