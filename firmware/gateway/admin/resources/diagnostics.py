"""Diagnostic snapshots: the gateway summary saved on request, listed and read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.snapshots import MAX_DIAG, snapshot_dir
from firmware.gateway.admin.web import Request, Response, error


class DiagnosticsRoutes(AdminCore):
    """GET and POST /api/diagnostics, GET /api/diagnostics/{name}."""

    def _diag_dir(self) -> Path:
        return snapshot_dir(self.state_dir)

    def h_diagnostics_list(self, req: Request, s: Session, _p: dict[str, str],
                           _b: Any) -> Response:
        """GET /api/diagnostics."""
        names = sorted(p.name for p in self._diag_dir().iterdir()
                       if p.is_file() and not p.is_symlink())
        return Response(200, {"snapshots": names})

    def h_diagnostics_create(self, req: Request, s: Session, _p: dict[str, str],
                             _b: Any) -> Response:
        """POST /api/diagnostics."""
        name = "snapshot-%d.json" % int(self.clock() * 1000)
        doc = self.status_doc()
        (self._diag_dir() / name).write_text(json.dumps(doc, sort_keys=True, default=str))
        self.event("admin.diagnostics.created", "info", s.account, "snapshot", name, "ok",
                   source=self._source(s))
        return Response(200, {"name": name})

    def h_diagnostics_get(self, req: Request, s: Session, p: dict[str, str],
                          _b: Any) -> Response:
        """GET /api/diagnostics/{name}: the name is resolved and must stay in the folder."""
        base = self._diag_dir()
        path = (base / p["name"]).resolve()
        if path.parent != base or path.is_symlink() or not path.is_file():
            return error(404, "not-found", "no such snapshot")
        data = path.read_bytes()[:MAX_DIAG]
        return Response(200, {"name": path.name, "content": data.decode("utf-8", "replace")})
