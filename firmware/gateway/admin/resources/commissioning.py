"""The live commissioning self-test, run on request for `mamori commission --admin URL`.

The self-test takes tens of seconds, so ``POST /api/commissioning`` starts it in a worker
thread (one at a time) and ``GET /api/commissioning`` tells how it went: ``running``, ``done``
(the signed envelope and the public key that verifies it), ``refused`` (the report with its
findings: nothing was signed) or ``error``. The self-test itself is handed in by the
composition root (``AdminCore.commission``): the admin room does not import the self-test room.
"""

from __future__ import annotations

import threading
from typing import Any

from firmware.core.errors import MamoriError, StateError
from firmware.gateway.admin.core import AdminCore, Session
from firmware.gateway.admin.web import Request, Response
from firmware.gateway.runtime.interfaces import Commission


class CommissioningRoutes(AdminCore):
    """POST and GET /api/commissioning."""

    _commissioning: dict[str, Any] | None = None
    _commissioning_lock = threading.Lock()

    def h_commissioning_start(self, req: Request, s: Session, _p: dict[str, str],
                              body: Any) -> Response:
        """POST /api/commissioning: start the live commissioning self-test."""
        if self.commission is None:
            raise StateError("this gateway cannot run its commissioning self-test here")
        with self._commissioning_lock:
            if (self._commissioning or {}).get("state") == "running":
                raise StateError("a commissioning self-test is already running")
            self._commissioning = {"state": "running"}
        level = body.get("level") if isinstance(body, dict) else None
        run = self.commission
        threading.Thread(target=self._run_commissioning, args=(run, level, s.account),
                         name="admin-commissioning", daemon=True).start()
        return Response(202, {"state": "running"})

    def _run_commissioning(self, run: Commission, level: int | None, account: str) -> None:
        try:
            out = run(level)
            result: dict[str, Any] = {"state": "done", "envelope": out["envelope"],
                                      "entry": out["entry"],
                                      "public_key": out["public_key"].decode()}
        except MamoriError as exc:
            report = getattr(exc, "report", None)
            result = {"state": "refused" if report else "error", "message": str(exc),
                      "report": report}
        except Exception as exc:  # the worker must always leave a state behind
            result = {"state": "error", "message": type(exc).__name__}
        self.event("admin.commissioning", "notice", account, "commission", "selftest",
                   result["state"])
        with self._commissioning_lock:
            self._commissioning = result

    def h_commissioning_get(self, req: Request, s: Session, _p: dict[str, str],
                            _b: Any) -> Response:
        """GET /api/commissioning: how the last commissioning self-test went."""
        with self._commissioning_lock:
            return Response(200, dict(self._commissioning or {"state": "none"}))
