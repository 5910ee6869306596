"""The platform's request topics other than commands: ``selftest_req`` and ``log_req`` (CPython).

Their payloads come from the network, so they are decoded strictly and every member has an
exact type; a malformed request is refused (``platform.request_rejected``) with the field named.
"""

from __future__ import annotations

from typing import Any

from firmware.core import schema, strictjson

MAX_REQUEST = 4096
MAX_DEPTH = 2
_TIME = schema.Num(0, 253402300799.0)  # Unix seconds up to the year 9999
_ID = schema.Token(1, 64)

SCHEMAS = {
    "selftest_req": schema.Obj({"id": _ID, "ts": schema.Opt(_TIME),
                                "level": schema.Opt(schema.Int(2, 3)),
                                "only": schema.Opt(schema.Str(64))}),
    "log_req": schema.Obj({"id": _ID, "ts": schema.Opt(_TIME), "since": schema.Opt(_TIME)}),
}


def parse_request(kind: str, payload: bytes) -> dict[str, Any]:
    """The checked request of topic `kind`; ProtocolError (FieldError) naming what is wrong."""
    raw = strictjson.loads_object(payload, kind, MAX_DEPTH, MAX_REQUEST)
    return dict(schema.check(raw, SCHEMAS[kind], kind))  # type: ignore[call-overload]
