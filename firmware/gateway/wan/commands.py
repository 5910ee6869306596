"""Platform commands on the gateway: authorise, execute through the LAN seam, report (CPython).

The result of every command (executed or refused) goes back on ``cmd_result`` with what was
commanded and what the device actually did; every refusal also becomes a security Event. A
signed envelope is handed to the executor unchanged (``envelope=``): the device checks ★★★
actions itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from firmware.common.sigverify import ed25519_verifier
from firmware.core import strictjson
from firmware.core.command_auth import CommandAuthorizer, CommandRefused, valid_token
from firmware.core.errors import MamoriError
from firmware.core.events import Event

# execute(device_id, action, params[, envelope=signed envelope]) -> {"commanded": ...,
# "actual": ..., "ok": bool}
Executor = Callable[..., dict[str, Any]]
# enqueue(stream, body, priority) -> msg_id
Enqueue = Callable[[str, dict[str, Any], int], str]

RESULT_PRIORITY = 1
MAX_COMMAND = 16 * 1024  # an envelope is a few hundred bytes
MAX_DEPTH = 4  # envelope -> params -> scalar
__all__ = ["CommandProcessor", "Executor", "ed25519_verifier"]


class CommandProcessor:
    """Turns one down-link command message into exactly one cmd_result (and Events)."""

    def __init__(self, authorizer: CommandAuthorizer, execute: Executor, enqueue: Enqueue,
                 emit: Callable[[Event], None]) -> None:
        self.authorizer = authorizer
        self.execute = execute
        self.enqueue = enqueue
        self.emit = emit
        self.counters = {"executed": 0, "refused": 0, "failed": 0}

    def handle(self, device: str | None, payload: bytes) -> dict[str, Any]:
        """Process one command payload from topic ``cmd/<device>``; return the result sent."""
        try:
            raw: Any = strictjson.loads(payload, "command", MAX_DEPTH, MAX_COMMAND)
            cmd = self.authorizer.check(raw, device)
        except CommandRefused as exc:
            return self._refused(raw, device, exc)
        except MamoriError as exc:  # undecodable payload: refused as malformed, with the why
            return self._refused(None, device, CommandRefused("malformed", exc.message))
        try:
            if cmd["sig"]:
                # forwarded unchanged: the device checks the platform's signature itself
                out = self.execute(cmd["device"], cmd["action"], dict(cmd["params"]),
                                   envelope=raw)
            else:
                out = self.execute(cmd["device"], cmd["action"], dict(cmd["params"]))
            if not isinstance(out, dict):
                raise TypeError("executor returned " + type(out).__name__)
            ok = bool(out.get("ok"))
            result = self._result(cmd, ok=ok, commanded=out.get("commanded", cmd["action"]),
                                  actual=out.get("actual"), reason=str(out.get("reason", "")))
            if isinstance(out.get("refused"), str):  # refused by the device itself
                result["refused"] = out["refused"]
        except Exception as exc:  # the device or the LAN channel failed: report it, stay up
            ok = False
            why = exc.message if isinstance(exc, MamoriError) else exc.__class__.__name__
            result = self._result(cmd, ok=False, commanded=cmd["action"], actual=None,
                                  reason="execution failed: " + why)
        self.counters["executed" if ok else "failed"] += 1
        self.enqueue("cmd_result", result, RESULT_PRIORITY)
        self.emit(Event("command.executed" if ok else "command.failed",
                        severity="notice" if ok else "warning", source="platform",
                        principal=cmd["requested_by"] or "platform", action=cmd["action"],
                        target=cmd["device"], result="ok" if ok else "failed",
                        reason=result["reason"],
                        params={"command_id": cmd["id"], "approved_by": cmd["approved_by"],
                                "actual": result["actual"], "signed": bool(cmd["sig"])}))
        return result

    def _result(self, cmd: dict[str, Any], ok: bool, commanded: Any, actual: Any,
                reason: str) -> dict[str, Any]:
        return {"command_id": cmd["id"], "device": cmd["device"], "action": cmd["action"],
                "ok": ok, "commanded": commanded, "actual": actual, "refused": "",
                "reason": reason, "requested_by": cmd["requested_by"],
                "approved_by": cmd["approved_by"], "ts": time.time()}

    def _refused(self, raw: Any, device: str | None, exc: CommandRefused) -> dict[str, Any]:
        self.counters["refused"] += 1
        env = raw if isinstance(raw, dict) else {}

        def field(name: str) -> str:
            v = env.get(name)
            return v if isinstance(v, str) and valid_token(v) else ""

        result: dict[str, Any] = {
                  "command_id": field("id"), "device": field("device") or (device or ""),
                  "action": field("action"), "ok": False, "commanded": field("action"),
                  "actual": None, "refused": exc.reason, "reason": exc.message,
                  "requested_by": field("requested_by"), "approved_by": field("approved_by"),
                  "ts": time.time()}
        self.enqueue("cmd_result", result, RESULT_PRIORITY)
        self.emit(Event("command.refused", severity="warning", source="platform",
                        principal=result["requested_by"] or "platform",
                        action=result["action"], target=result["device"], result="refused",
                        reason=exc.reason + ": " + exc.message,
                        params={"command_id": result["command_id"],
                                "approved_by": result["approved_by"]}))
        return result
