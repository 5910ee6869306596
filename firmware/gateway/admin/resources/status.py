"""The gateway summary and this API's own description."""

from __future__ import annotations

from typing import Any

from firmware.gateway.admin import openapi
from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response


class StatusRoutes(AdminCore):
    """GET /api/status and /openapi.json."""

    def h_status(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /api/status."""
        return Response(200, self.status_doc())

    def h_openapi(self, req: Request, s: Session, _p: dict[str, str], _b: Any) -> Response:
        """GET /openapi.json."""
        return Response(200, openapi.load())
