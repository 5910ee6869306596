"""HMAC-SHA-256 on every port (portable).

CPython and MicroPython builds that carry micropython-lib's ``hmac`` use that module. Builds
without it (the MicroPython unix port from PyPI, rp2 and esp32 firmware without ``mip install
hmac``) get RFC 2104's construction over the port's ``hashlib.sha256`` here: the standard
algorithm, not a new one; tests/core/test_hmacsha.py checks it against RFC 4231's test vectors
and against CPython's ``hmac``.
"""

import hashlib

try:
    import hmac as _hmac
except ImportError:  # a MicroPython without micropython-lib's hmac
    _hmac = None  # type: ignore[assignment]

BLOCK = 64  # SHA-256's block size in bytes
_DIGEST = getattr(_hmac, "digest", None)


def rfc2104(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA-256 as RFC 2104 defines it, over hashlib alone."""
    key = bytes(key)
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key + b"\0" * (BLOCK - len(key))
    inner = hashlib.sha256(bytes([b ^ 0x36 for b in key]))
    inner.update(msg)
    outer = hashlib.sha256(bytes([b ^ 0x5C for b in key]))
    outer.update(inner.digest())
    return outer.digest()


def mac(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA-256 of `msg` under `key` (32 bytes)."""
    if _DIGEST is not None:
        return _DIGEST(key, msg, "sha256")
    if _hmac is not None:
        return _hmac.new(bytes(key), msg, hashlib.sha256).digest()
    return rfc2104(key, msg)


def equal(a: bytes, b: bytes) -> bool:
    """Compare two MACs without an early exit on the first differing byte."""
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0
