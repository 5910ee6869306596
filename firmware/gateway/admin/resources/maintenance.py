"""Maintenance windows: list, open (time-boxed), close (ending every maintenance session)."""

from __future__ import annotations

from typing import Any

from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response


class MaintenanceRoutes(AdminCore):
    """GET, POST and DELETE /api/maintenance/windows."""

    def h_windows_list(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/maintenance/windows."""
        return Response(200, {"windows": self.db.open_windows(self.clock())})

    def h_window_open(self, req: Request, s: Session, _p: dict[str, str], body: Any) -> Response:
        """POST /api/maintenance/windows."""
        now = self.clock()
        expires = now + 60 * body["minutes"]
        wid = self.db.open_window(s.account, now, expires)
        self.event("maintenance.window.opened", "notice", s.account, "open-window",
                   "maintenance", "ok", source="maintenance", window=wid, expires=expires)
        return Response(200, {"id": wid, "expires": expires})

    def h_windows_close(self, req: Request, s: Session, _p: dict[str, str],
                        _b: Any) -> Response:
        """DELETE /api/maintenance/windows."""
        n = self.db.close_windows()
        ended = 0
        for row in self.db.sessions():
            if row["window_id"] is not None:
                self._end_session(Session(row), "window closed")
                ended += 1
        self.event("maintenance.window.closed", "notice", s.account, "close-window",
                   "maintenance", "ok", source="maintenance", windows=n, sessions=ended)
        return Response(200, {"closed": n, "sessions_ended": ended})
