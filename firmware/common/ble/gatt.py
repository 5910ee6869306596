"""The Mamori GATT service and how BLE frames ride on it: one characteristic, segmented values.

A BLE frame (``firmware.core.blelink``) can exceed one ATT value (MTU - 3 bytes, at most 514),
and notifications cannot be long: every frame is sent as segments whose first byte says whether
more follow (``MORE``). The receiving side reassembles, refusing anything larger than a frame.
Both ends (gateway central, device peripheral) and both backends (bleak, bumble) use this.
"""

from __future__ import annotations

from collections.abc import Callable

from firmware.core import blelink

SERVICE_UUID = "6d616d6f-7269-4000-8000-000000000001"
CHAR_UUID = "6d616d6f-7269-4000-8000-000000000002"
MORE = 0x80
LAST = 0x00
MAX_FRAME = blelink.HEADER + blelink.MAX_PAYLOAD
MIN_MTU = 23  # the ATT default every link starts with


def segments(frame: bytes, mtu: int) -> list[bytes]:
    """Split one frame into ATT values for a link of this MTU."""
    size = max(MIN_MTU, mtu) - 3 - 1
    parts = [frame[i:i + size] for i in range(0, len(frame), size)] or [b""]
    return [bytes([MORE if i < len(parts) - 1 else LAST]) + p for i, p in enumerate(parts)]


class Reassembler:
    """Collects segments into frames; drops a frame that grows past the largest legal one."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.dropped = 0
        self._overflow = False

    def feed(self, value: bytes) -> bytes | None:
        """One ATT value in; a whole frame out when this was its last segment."""
        if not value:
            self.dropped += 1
            return None
        flags, body = value[0], value[1:]
        if flags not in (MORE, LAST):
            self.dropped += 1
            self.buf.clear()
            return None
        if not self._overflow:
            self.buf += body
            if len(self.buf) > MAX_FRAME:
                self._overflow = True
                self.buf.clear()
        if flags == MORE:
            return None
        if self._overflow:
            self._overflow = False
            self.dropped += 1
            return None
        frame = bytes(self.buf)
        self.buf.clear()
        return frame


class SegmentedTransport:
    """A ``BleTransport`` over one GATT characteristic: segments out, reassembled frames in.

    Subclasses send one ATT value (``_send_value``); the radio calls ``value_received`` for
    every value the peer writes or notifies. Frames that arrive before the channel subscribes
    are held, like a radio buffer.
    """

    def __init__(self, pairing_mode: str, peer: str, mtu: int = MIN_MTU) -> None:
        self.pairing_mode = pairing_mode
        self.peer = peer
        self.mtu = mtu
        self.sent: list[bytes] = []
        self._rx = Reassembler()
        self._cb: Callable[[bytes], None] | None = None
        self._pending: list[bytes] = []

    async def _send_value(self, value: bytes) -> None:
        raise NotImplementedError

    async def write(self, data: bytes) -> None:
        """Send one frame as segments (in order)."""
        self.sent.append(bytes(data))
        for value in segments(bytes(data), self.mtu):
            await self._send_value(value)

    def set_notify(self, callback: Callable[[bytes], None]) -> None:
        """Deliver every reassembled frame to callback (anything held first)."""
        self._cb = callback
        pending, self._pending = self._pending, []
        for frame in pending:
            callback(frame)

    def value_received(self, value: bytes) -> None:
        """The radio delivers one ATT value from the peer."""
        frame = self._rx.feed(bytes(value))
        if frame is None:
            return
        if self._cb is None:
            if len(self._pending) < 64:
                self._pending.append(frame)
        else:
            self._cb(frame)
