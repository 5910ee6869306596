"""Platform-requested self-test: ``selftest_req`` in, a signed JSON report out (CPython).

The WAN client calls :func:`handle_request` (in a worker thread: the checks block) with the
request it received on ``mamori/v1/<gateway>/selftest_req`` and publishes the returned envelope
on the ``selftest`` up-link stream.
"""

from __future__ import annotations

import re
from typing import Any

from firmware.core import selftest as model
from firmware.core.errors import ProtocolError
from firmware.core.events import Event
from firmware.gateway.selftest.commissioning import installation_level, signed_selftest

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}\Z")
ALLOWED_KEYS = {"id", "level", "only"}


def parse_request(request: Any) -> dict[str, Any]:
    """Validate a request: ``{"id": str, "level"?: 2|3, "only"?: check-or-feature ID}``."""
    if not isinstance(request, dict):
        raise ProtocolError("self-test request must be a JSON object")
    unknown = set(request) - ALLOWED_KEYS
    if unknown:
        raise ProtocolError("self-test request has unknown fields: " + ", ".join(sorted(unknown)))
    rid = request.get("id")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ProtocolError("self-test request needs an 'id' (1-64 of A-Z a-z 0-9 . _ : -)")
    level = request.get("level")
    if level is not None and (isinstance(level, bool) or level not in model.LEVELS):
        raise ProtocolError("self-test request 'level' must be 2 or 3")
    only = request.get("only")
    if only is not None and not (isinstance(only, str) and (model.valid_check_id(only) or
                                                            re.match(r"^[a-z0-9-]{1,32}$", only))):
        raise ProtocolError("self-test request 'only' must be a check or feature ID")
    return {"id": rid, "level": level, "only": only}


def handle_request(gw: Any, request: Any) -> dict[str, Any]:
    """Run the requested self-test; return ``{"request_id", "report", "signature"}``.

    The signed report carries the request ID too (the platform checks it: no replay).
    """
    try:
        req = parse_request(request)
    except ProtocolError as exc:
        gw.emit(Event("selftest.request_refused", "warning", "selftest", principal="platform",
                      action="selftest", result="refused", reason=exc.message))
        raise
    level = installation_level(gw.state_dir, req["level"])
    envelope = signed_selftest(gw.state_dir, level, gw.board.name, gw.board, req["only"],
                               bind={"purpose": "platform-request", "request_id": req["id"]})
    summary = envelope["report"]["summary"]
    gw.emit(Event("selftest.completed", "notice" if summary["verdict"] != "fail" else "warning",
                  "selftest", principal="platform", action="selftest", result=summary["verdict"],
                  params={"request_id": req["id"], "counts": summary["counts"]}))
    return {"request_id": req["id"], **envelope}
