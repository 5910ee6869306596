"""BLE link framing, handshake sequencing, replay counters and pairing policy (portable).

One GATT write/notification carries one frame: ``kind`` (1 byte), ``counter`` (8 bytes,
big-endian), ``length`` (2 bytes), payload. Handshake frames (kinds 1 and 2) carry the Noise
messages; data frames (kind 3) carry AEAD ciphertext whose nonce is the counter. The crypto is
done elsewhere (CPython: ``firmware/common/ble/noise.py``); this module only checks shape,
order and freshness, so it runs on MicroPython too.
"""

import struct

from firmware.core.errors import AuthError, ProtocolError

HS1 = 1
HS2 = 2
DATA = 3
KINDS = (HS1, HS2, DATA)
HEADER = 11
MAX_PAYLOAD = 1024  # message 1 carries the signed device record (~600 bytes)
SECURE_PAIRING = "le-secure-connections"


def encode(kind: int, counter: int, payload: bytes) -> bytes:
    """Build one frame."""
    if kind not in KINDS:
        raise ProtocolError("unknown BLE frame kind %d" % kind)
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("BLE frame payload of %d bytes exceeds %d" % (len(payload),
                                                                        MAX_PAYLOAD))
    return struct.pack(">BQH", kind, counter, len(payload)) + payload


def decode(data: bytes) -> "tuple[int, int, bytes]":
    """Parse one frame: (kind, counter, payload); ProtocolError when malformed."""
    if len(data) < HEADER:
        raise ProtocolError("BLE frame shorter than its header")
    if len(data) > HEADER + MAX_PAYLOAD:
        raise ProtocolError("BLE frame of %d bytes is oversized" % len(data))
    kind, counter, length = struct.unpack(">BQH", data[:HEADER])
    if kind not in KINDS:
        raise ProtocolError("unknown BLE frame kind %d" % kind)
    if length != len(data) - HEADER:
        raise ProtocolError("BLE frame length field does not match its size")
    return kind, counter, data[HEADER:]


def check_pairing(mode: str) -> None:
    """Refuse any link-layer pairing mode but LE Secure Connections (legacy pairing is broken)."""
    if mode != SECURE_PAIRING:
        raise AuthError("BLE link uses %s pairing; only LE Secure Connections is accepted"
                        % mode, "re-pair the device with LE Secure Connections")


class ReplayGuard:
    """Counters of one direction: each must be larger than the last (GATT is ordered)."""

    def __init__(self) -> None:
        self.last = -1

    def check(self, counter: int) -> None:
        """Accept a fresh counter, refuse a replayed or reordered one."""
        if counter <= self.last:
            raise ProtocolError("BLE frame counter %d replayed or out of order (last %d)"
                                % (counter, self.last))
        self.last = counter


class HandshakeSequence:
    """Which frame kind may come next, for an initiator (device) or responder (gateway)."""

    def __init__(self, role: str) -> None:
        if role not in ("initiator", "responder"):
            raise ValueError("role must be initiator or responder")
        self.role = role
        self.state = "start"

    def expect(self, kind: int) -> None:
        """Check an incoming frame kind against the state; advance on handshake frames."""
        if self.state == "done":
            if kind != DATA:
                raise ProtocolError("handshake frame after the handshake finished")
            return
        want = HS1 if self.role == "responder" else HS2
        if self.state in ("start", "answered") and (self.role == "initiator") == (
                self.state == "start"):
            raise ProtocolError("frame received out of turn in handshake state " + self.state)
        if kind != want:
            raise ProtocolError("expected handshake message %d, got frame kind %d"
                                % (want, kind))
        self.state = "done" if self.role == "initiator" else "answered"

    def sent(self, kind: int) -> None:
        """Record an outgoing handshake frame."""
        if self.role == "initiator" and kind == HS1 and self.state == "start":
            self.state = "sent"
        elif self.role == "responder" and kind == HS2 and self.state == "answered":
            self.state = "done"
        elif kind != DATA or self.state != "done":
            raise ProtocolError("frame kind %d cannot be sent in state %s" % (kind, self.state))

    @property
    def done(self) -> bool:
        """True once both handshake messages have passed."""
        return self.state == "done"
