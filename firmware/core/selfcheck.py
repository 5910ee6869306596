"""A small self-check the deployed core runs on its target (portable).

Known answers for SHA-256 and HMAC-SHA-256 and a frames round trip (whole, byte by byte, and an
oversized frame refused). ``run()`` returns a dict; ``line()`` renders it as one line.
"""

import binascii
import hashlib

from firmware.core import frames, hmacsha
from firmware.core.errors import ProtocolError

# FIPS 180-2 appendix B.1 and RFC 4231 test case 2.
SHA256_ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
HMAC_JEFE = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def _hex(data: bytes) -> str:
    return binascii.hexlify(data).decode()


def _sha256() -> bool:
    return _hex(hashlib.sha256(b"abc").digest()) == SHA256_ABC


def _hmac() -> bool:
    return _hex(hmacsha.mac(b"Jefe", b"what do ya want for nothing?")) == HMAC_JEFE


def _frames() -> bool:
    msg = {"type": "selfcheck", "n": 7, "text": "caf\u00e9", "list": [1, 2, 3]}
    wire = frames.encode(msg)
    if frames.FrameDecoder().feed(wire) != [msg]:
        return False
    dec = frames.FrameDecoder()
    got = []
    for i in range(len(wire)):
        got += dec.feed(wire[i:i + 1])
    if got != [msg] or dec.pending != 0:
        return False
    small = frames.FrameDecoder(max_frame=8)
    try:
        small.feed(wire)
    except ProtocolError:
        return True
    return False


CHECKS = (("sha256", _sha256), ("hmac", _hmac), ("frames", _frames))


def run() -> dict:
    """Run every check; ``ok`` is true only when all pass (an exception counts as a failure)."""
    results = {}
    for name, fn in CHECKS:
        try:
            results[name] = bool(fn())
        except Exception:  # noqa: BLE001 - a crashing check is a failed check
            results[name] = False
    ok = True
    for name in results:
        ok = ok and results[name]
    return {"ok": ok, "checks": results}


def line(result: dict) -> str:
    """One line for a console: ``selfcheck ok: frames hmac sha256`` or the failures."""
    names = sorted(result["checks"])
    if result["ok"]:
        return "selfcheck ok: " + " ".join(names)
    return "selfcheck FAILED: " + " ".join(n for n in names if not result["checks"][n])
