"""Canonical encoding of access-log records and minimisation of their parameters (portable)."""

import json

from firmware.core import strictjson

# The fields every record carries, in display order.
FIELDS = (
    "seq", "ts", "mono", "boot", "kind", "severity", "source", "principal", "action", "target",
    "result", "reason", "params", "id",
)
SECRET_WORDS = (
    "password", "passwd", "passphrase", "secret", "token", "psk", "pin", "private", "credential",
    "cookie", "otp", "key",
)
REDACTED = "[redacted]"
MAX_STR = 256
MAX_ITEMS = 32
MAX_DEPTH = 4


def canonical(obj: object) -> bytes:
    """Deterministic compact JSON: sorted keys, no spaces, UTF-8."""
    if _str_keys(obj):
        try:  # CPython's C encoder gives the same bytes as _enc, several times faster
            return json.dumps(obj, sort_keys=True, separators=(",", ":"),
                              default=str).encode("utf-8")
        except TypeError:  # MicroPython's json has no sort_keys: the portable encoder
            pass
    return _enc(obj).encode("utf-8")


def _str_keys(obj: object) -> bool:
    """True when every dict key inside obj is a string (else _enc raises, as it must)."""
    if isinstance(obj, dict):
        for k in obj:
            if not isinstance(k, str) or not _str_keys(obj[k]):
                return False
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            if not _str_keys(v):
                return False
    return True


def _enc(obj: object) -> str:
    if isinstance(obj, dict):
        parts = []
        for k in sorted(obj.keys()):
            if not isinstance(k, str):
                raise ValueError("record keys must be strings")
            parts.append(json.dumps(k) + ":" + _enc(obj[k]))
        return "{" + ",".join(parts) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join([_enc(v) for v in obj]) + "]"
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return json.dumps(obj)
    return json.dumps(str(obj))


def decode(data: bytes) -> dict:
    """Parse a record's plaintext strictly; ProtocolError if it is not an acceptable object."""
    return strictjson.loads_object(data, "record", MAX_DEPTH * 3, 1024 * 1024)


def is_secret_name(name: str) -> bool:
    """True when a parameter name says it holds a secret (its value is never logged)."""
    low = name.lower()
    for w in SECRET_WORDS:
        if w in low:
            return True
    return False


def minimise(value: object, depth: int = 0) -> object:
    """Drop secret values, cut long strings and big containers (data minimisation)."""
    if isinstance(value, dict):
        out: dict = {}
        n = 0
        for k in sorted(value.keys()):
            n += 1
            if n > MAX_ITEMS:
                out["_truncated"] = len(value) - MAX_ITEMS
                break
            key = str(k)
            if is_secret_name(key):
                out[key] = REDACTED
            elif depth >= MAX_DEPTH:
                out[key] = "[nested]"
            else:
                out[key] = minimise(value[k], depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [minimise(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append("[+%d more]" % (len(value) - MAX_ITEMS))
        return items
    if isinstance(value, str):
        if len(value) > MAX_STR:
            return value[:MAX_STR] + "...[cut]"
        return value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return minimise(str(value), depth)


def make_record(fields: dict, seq: int, ts: float, mono: float, boot: str) -> dict:
    """A complete, minimised record: missing fields filled, time and sequence stamped."""
    rec: dict = {}
    for name in FIELDS:
        rec[name] = ""
    params = fields.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        params = {"value": params}
    else:
        params = dict(params)
    for k in fields:
        if k in ("seq", "mono", "boot", "params"):
            continue
        if k in FIELDS:
            rec[k] = fields[k]
        else:
            params[str(k)] = fields[k]
    if not rec.get("ts"):
        rec["ts"] = ts
    rec["seq"] = seq
    rec["mono"] = mono
    rec["boot"] = boot or str(fields.get("boot", ""))
    if not rec.get("severity"):
        rec["severity"] = "info"
    rec["params"] = minimise(params)
    for k in ("kind", "source", "principal", "action", "target", "result", "reason", "id"):
        v = rec.get(k)
        rec[k] = minimise("" if v is None else str(v))
    return rec
