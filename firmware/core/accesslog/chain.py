"""Hash chain, per-record tags and forward-evolving seal keys (portable).

Every frame extends the chain: h' = SHA-256("MAL1" | h | type | body). Records carry a 16-byte
tag HMAC(key_e, "rec" | h') under the key of the current epoch e; a checkpoint closes epoch e
with a seal HMAC(key_e, "seal" | checkpoint) and the key then evolves:
key_{e+1} = HMAC(key_e, "evolve"), the old key being overwritten. Someone who steals key_e later
cannot tag or seal anything in an earlier epoch. The verifier re-derives every key from key_0,
which leaves the gateway for the platform.
"""

import binascii
import hashlib

from firmware.core import hmacsha

TAG_LEN = 16
KEY_LEN = 32


def mac(key: bytes, msg: bytes) -> bytes:
    """HMAC-SHA-256."""
    return hmacsha.mac(key, msg)


def genesis(log_id: str) -> bytes:
    """The chain value before the very first frame of a log."""
    return hashlib.sha256(b"mamori-accesslog-v1 genesis " + log_id.encode()).digest()


def step(h: bytes, ftype: bytes, body: bytes) -> bytes:
    """Extend the chain over one frame."""
    d = hashlib.sha256(b"MAL1")
    d.update(h)
    d.update(ftype)
    d.update(body)
    return d.digest()


def record_tag(key: bytes, h: bytes) -> bytes:
    """The per-record tag that locates an edit within a sealed epoch."""
    return mac(key, b"rec" + h)[:TAG_LEN]


def seal(key: bytes, body: bytes) -> bytes:
    """The seal of a checkpoint body (without its seal and signature)."""
    return mac(key, b"seal" + body)


def evolve(key: bytes) -> bytes:
    """The next epoch's key."""
    return mac(key, b"evolve")


def derive(key0: bytes, epoch: int) -> bytes:
    """key_epoch from key_0 (verifier side)."""
    k = bytes(key0)
    for _ in range(epoch):
        k = evolve(k)
    return k


def hexs(b: bytes) -> str:
    """Lower-case hex string."""
    return binascii.hexlify(b).decode()


def unhex(s: str) -> bytes:
    """Bytes from a hex string; ValueError when it is not hex."""
    try:
        return binascii.unhexlify(s)
    except Exception:
        raise ValueError("not hex")


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison."""
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


class SealKey:
    """The current epoch and its key; evolve() overwrites the old key in place."""

    def __init__(self, epoch: int, key: bytes) -> None:
        if len(key) != KEY_LEN:
            raise ValueError("seal key must be 32 bytes")
        self.epoch = epoch
        self._key = bytearray(key)

    @property
    def key(self) -> bytes:
        """The current key (a copy)."""
        return bytes(self._key)

    def evolve(self) -> None:
        """Move to the next epoch and erase the previous key from memory."""
        nxt = evolve(bytes(self._key))
        for i in range(KEY_LEN):
            self._key[i] = nxt[i]
        self.epoch += 1

    def restore(self, epoch: int, key: "bytes | bytearray") -> None:
        """Go back to a copy taken before a write that failed (the epoch was never sealed)."""
        if len(key) != KEY_LEN:
            raise ValueError("seal key must be 32 bytes")
        for i in range(KEY_LEN):
            self._key[i] = key[i]
        self.epoch = epoch

    def wipe(self) -> None:
        """Erase the key from memory."""
        for i in range(KEY_LEN):
            self._key[i] = 0
