"""The devices as the gateway's status file last listed them (for `mamori commission`)."""

from __future__ import annotations

import json
from typing import Any

from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response, error
from firmware.gateway.runtime.gateway import STATUS_FILE


class DeviceRoutes(AdminCore):
    """GET /api/devices."""

    def h_devices(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/devices: the gateway id, its LAN endpoint and every device's state."""
        try:
            doc = json.loads((self.state_dir / STATUS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return error(409, "state", "the gateway has not written its status yet")
        gw, lan = doc.get("gateway") or {}, doc.get("lan") or {}
        devices = [{k: d.get(k) for k in ("id", "transport", "state", "reason")}
                   for d in doc.get("devices", []) if isinstance(d, dict)]
        refused = [{k: e.get(k) for k in ("principal", "reason", "ts")}
                   for e in doc.get("events", []) if isinstance(e, dict)
                   and e.get("kind") == "auth.refused"][-20:]
        return Response(200, {"gateway_id": gw.get("id", ""), "lan": {
            "host": lan.get("host"), "port": lan.get("port")}, "devices": devices,
            "refused": refused})
