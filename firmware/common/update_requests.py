"""Platform-triggered updates: verify ``update_req`` on the WAN side, hand it to the OTA service.

The WAN service passes every ``update_req`` payload to :class:`UpdateRequestHandler`: a request
signed with the site's command key becomes the bus Event ``platform.update_requested`` (the OTA
service runs the update); anything else is refused on the ``update`` up-link and as a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from firmware.core import strictjson
from firmware.core.command_auth import CommandRefused, valid_token
from firmware.core.errors import ProtocolError
from firmware.core.events import Event
from firmware.core.update.request import UpdateRequestChecker

REQUESTED = "platform.update_requested"
STREAM = "update"
PRIORITY = 1
MAX_REQUEST = 16 * 1024
MAX_DEPTH = 2
# Result words on the `update` up-link; the first three are final outcomes of a request.
RESULTS = {"installed": "installed", "current": "already-current",
           "rolled_back": "rolled-back", "rebooting": "rebooting",
           "rolling_back": "rebooting"}
SUCCESS = ("installed", "already-current")
FINAL = ("installed", "already-current", "rolled-back", "refused")

Submit = Callable[[str, dict[str, Any], int], str]


class UpdateRequestHandler:
    """Checks one update request and either announces it on the bus or refuses it."""

    def __init__(self, checker: UpdateRequestChecker, submit: Submit,
                 emit: Callable[[Event], None]) -> None:
        self.checker = checker
        self.submit = submit
        self.emit = emit
        self.counters = {"accepted": 0, "refused": 0}

    def handle(self, payload: bytes) -> dict[str, Any]:
        """Process one payload; returns the up-link body sent."""
        try:
            raw: Any = strictjson.loads(payload, "update request", MAX_DEPTH, MAX_REQUEST)
        except ProtocolError as exc:
            return self._refused("", CommandRefused("malformed", exc.message))
        rid = raw.get("id") if isinstance(raw, dict) else None
        req_id = rid if isinstance(rid, str) and valid_token(rid) else ""
        try:
            req = self.checker.check(raw)
        except CommandRefused as exc:
            return self._refused(req_id, exc)
        self.counters["accepted"] += 1
        body = {"request_id": req["id"], "result": "accepted", "reason": ""}
        self.submit(STREAM, body, PRIORITY)
        self.emit(Event(REQUESTED, "notice", source="platform",
                        principal=req["requested_by"] or "platform", action="update",
                        target=req["board"], result="accepted",
                        params={"request_id": req["id"], "url": req["url"],
                                "board": req["board"], "min_version": req["min_version"]}))
        return body

    def _refused(self, req_id: str, exc: CommandRefused) -> dict[str, Any]:
        self.counters["refused"] += 1
        body = {"request_id": req_id, "result": "refused", "refused": exc.reason,
                "reason": exc.message}
        self.submit(STREAM, body, PRIORITY)
        self.emit(Event("ota.request_refused", "warning", source="platform",
                        action="update", target=str(req_id), result="refused",
                        reason=exc.message, params={"refused": exc.reason}))
        return body


def result_body(request_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The up-link body for an agent result."""
    return {"request_id": request_id, "result": RESULTS.get(result.get("result", ""),
                                                            str(result.get("result"))),
            "version": result.get("version", ""), "slot": result.get("slot", ""),
            "from_version": result.get("from_version", ""),
            "failed_version": result.get("failed_version", ""),
            "reason": result.get("reason", "")}
