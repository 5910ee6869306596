"""Exact shapes of the access log's JSON frames and files: header, checkpoint, head (portable).

A log under verification may have been tampered with, so these documents are untrusted input:
strictly decoded (size, depth, no NaN, 64-bit integers) and checked member by member. Every
failure is a ProtocolError (schema.FieldError) naming the field; the verifier turns it into a
located problem ("seg-00000002.log offset 812: malformed checkpoint (...)").
"""

from firmware.core import schema, strictjson

MAX_DOC = 65536  # a frame body's limit (framing.MAX_BODY)
MAX_DEPTH = 4  # checkpoint -> base -> scalar
HEX = "0123456789abcdefABCDEF"
INT = schema.Int(0, 2 ** 63 - 1)
TIME = schema.Num(-1e12, 1e12)
LOG_ID = schema.Token(1, 64)


def Hex(nbytes: int, exact: bool = True) -> schema.Str:  # noqa: N802 - reads like a type
    """Hex text of `nbytes` bytes (at most, when not exact)."""
    return schema.Str(2 * nbytes, 2 * nbytes if exact else 0, HEX)


HEADER = schema.Obj({
    "format": schema.Str(32), "v": schema.Int(0, 2 ** 31), "log": LOG_ID, "seg": INT,
    "seq": INT, "prev": Hex(32), "epoch": INT,
})
# The retention base: where the oldest kept segment starts the chain ({} before any pruning).
BASE = schema.Obj({"seg": schema.Opt(INT), "seq": schema.Opt(INT), "prev": schema.Opt(Hex(32))})
CHECKPOINT = schema.Obj({
    "t": schema.Const("checkpoint"), "log": LOG_ID, "epoch": INT, "seq": INT,
    "head": Hex(32), "seal": Hex(32), "sig": Hex(256, False), "ts": TIME, "base": BASE,
    "mono": schema.Opt(TIME), "boot": schema.Opt(schema.Str(64, 0)),
    "pub": schema.Opt(Hex(64, False)), "reason": schema.Opt(schema.Str(64, 0)),
    "seg": schema.Opt(INT), "rotate": schema.Opt(schema.Bool()),
    "final": schema.Opt(schema.Bool()),  # the last checkpoint before a resale reset
})
# What the platform keeps from the gateway's key escrow (platform-keys.json).
PLATFORM_KEYS = schema.Obj({
    "log_id": LOG_ID, "pub": Hex(64, False), "key0": schema.Opt(Hex(64, False)),
    "data_key": schema.Opt(Hex(64, False)), "created": schema.Opt(TIME),
    "format": schema.Opt(schema.Str(32)), "v": schema.Opt(schema.Int(0, 2 ** 31)),
})


def parse(body: "bytes | str", what: str, shape: object) -> dict:
    """Decode and check one document; ProtocolError naming `what` and the field."""
    doc = strictjson.loads_object(body, what, MAX_DEPTH, MAX_DOC)
    schema.check(doc, shape, what)
    return doc


def parse_checkpoint(body: "bytes | str") -> dict:
    """A checkpoint frame's body, checked (the dict as decoded: seals cover every byte)."""
    return parse(body, "checkpoint", CHECKPOINT)
