"""Verify and decrypt an access log located by firmware.common.accesslog.source (CPython)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from firmware.common.accesslog.files import ed25519_verify
from firmware.common.accesslog.source import LogSource
from firmware.core.accesslog import framing
from firmware.core.accesslog.encoding import decode
from firmware.core.accesslog.verify import Verifier
from firmware.core.accesslog.writer import record_aad, split_record
from firmware.core.errors import ConfigError, IntegrityError, MamoriError, StateError


class LogTampered(MamoriError):
    """The log failed verification (exit code 2)."""

    code = "tampered"
    exit_code = 2


def verify(src: LogSource) -> dict[str, Any]:
    """Run the portable verifier over every segment; the report dict."""
    v = Verifier(key0=src.key0, pub=src.pub, sig_verify=ed25519_verify, log_id=src.log_id,
                 heads=src.heads, key_epoch=src.key_epoch, key_now=src.key_now)
    for name, n, data, last in src.read_segments():
        v.feed(name, n, data, last)
    report = v.finish()
    cp = v.last_cp
    # The gateway's last words before a resale reset: a signed, sealed checkpoint marked final
    # with nothing after it. Only an intact log can say that.
    report["ended_in_reset"] = bool(report["ok"] and cp.get("final") is True
                                    and cp.get("reason") == "reset" and not report["unsealed"])
    report["final_checkpoint"] = ({"epoch": cp.get("epoch"), "seq": cp.get("seq"),
                                   "ts": cp.get("ts")} if cp.get("final") is True else None)
    report["source"] = {"kind": src.kind, "path": str(src.path)}
    report["warnings"] = src.notes + report["warnings"]
    return report


def records(src: LogSource) -> Iterator[dict[str, Any]]:
    """Decrypt every record in order; IntegrityError naming the first unreadable one."""
    if src.data_key is None:
        raise StateError("no data key for this log: records cannot be decrypted",
                         "on the gateway the key is unwrapped with the device key; for an "
                         "uploaded copy it comes with platform-keys.json (or --key)")
    aead = AESGCM(src.data_key)
    log_id = src.log_id
    for name, _n, data, last in src.read_segments():
        frames, _end, trouble = framing.scan(data, allow_torn=last)
        if not frames or frames[0][1] != framing.HEADER:
            raise IntegrityError("%s is not an access-log segment" % name)
        hdr = framing.parse_header(frames[0][2])
        log_id = log_id or hdr["log"]
        for off, ftype, body in frames[1:]:
            if ftype != framing.RECORD:
                continue
            seq, nonce, ct, _tag = split_record(body)
            try:
                plain = aead.decrypt(nonce, ct, record_aad(hdr["log"], seq))
                rec = decode(plain)
            except Exception:
                raise IntegrityError("%s offset %d record seq %d cannot be decrypted"
                                     % (name, off, seq), "wrong key, or the record was altered")
            yield rec
        if trouble is not None and trouble[0] == "corrupt":
            raise IntegrityError("%s: %s" % (name, trouble[1]), "run `mamori logs verify`")


def parse_time(text: str) -> float:
    """Seconds since the epoch from ISO 8601 (naive = UTC) or a number."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError("not a time: %r" % text, hint="use ISO 8601 or epoch seconds")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.UTC)
    return dt.timestamp()


def matches(rec: dict[str, Any], flt: dict[str, Any]) -> bool:
    """Whether a record passes the show/export filters."""
    ts = float(rec.get("ts") or 0)
    if flt.get("since") is not None and ts < flt["since"]:
        return False
    if flt.get("until") is not None and ts > flt["until"]:
        return False
    for key, field in (("source", "source"), ("principal", "principal"), ("device", "target"),
                       ("action", "action"), ("result", "result")):
        want = flt.get(key)
        if want and str(rec.get(field, "")) != want:
            return False
    return True


def iso(ts: Any) -> str:
    """A record's wall time as ISO 8601 UTC."""
    try:
        return datetime.datetime.fromtimestamp(float(ts), datetime.UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
    except (TypeError, ValueError, OverflowError):
        return "?"
