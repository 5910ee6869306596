"""Device session messages after the hello, checked per field (portable).

``hb`` {seq, state} and ``local`` {action, state} come from an admitted device, but that device
may be compromised: what it says ends up in the access log, the status view and the platform.
So ``action`` is a short token (like a ``cmd`` action) and a ``state`` is a small object: at
most ``MAX_STATE_KEYS`` keys, ``MAX_STATE_DEPTH`` levels, ``MAX_STATE_BYTES`` once encoded.
``result`` frames keep their free shape (matched against a pending command by ``cid``).
"""

import json

from firmware.core import schema
from firmware.core.errors import ProtocolError

MAX_ACTION = 32
MAX_STATE_KEYS = 32
MAX_STATE_DEPTH = 3
MAX_STATE_BYTES = 4096


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max([_depth(v) for v in value.values()] or [0])
    if isinstance(value, list):
        return 1 + max([_depth(v) for v in value] or [0])
    return 0


def _state_problem(state: object) -> str:
    if _depth(state) > MAX_STATE_DEPTH:
        return "nests deeper than %d levels" % MAX_STATE_DEPTH
    size = len(json.dumps(state))
    if size > MAX_STATE_BYTES:
        return "is %d bytes once encoded, more than %d" % (size, MAX_STATE_BYTES)
    return ""


STATE = schema.Check(schema.Map(schema.Token(1, 32), schema.Any_(), MAX_STATE_KEYS),
                     _state_problem)

SCHEMAS = {
    "hb": schema.Obj({"type": schema.Const("hb"), "seq": schema.Opt(schema.Int()),
                      "state": schema.Opt(STATE)}, extra=True),
    "local": schema.Obj({"type": schema.Const("local"),
                         "action": schema.Token(1, MAX_ACTION),
                         "state": schema.Opt(STATE)}, extra=True),
    "result": schema.Obj({"type": schema.Const("result")}, extra=True),
}


def parse_message(msg: dict) -> dict:
    """The checked message; schema.FieldError naming the field, ProtocolError for a new type."""
    kind = msg.get("type")
    spec = SCHEMAS.get(kind) if isinstance(kind, str) else None
    if spec is None:
        raise ProtocolError("unknown message type %r" % str(kind)[:40])
    return schema.check(msg, spec, str(kind))  # type: ignore[return-value]
