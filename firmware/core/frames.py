"""Length-prefixed JSON frames for LAN channels (portable, sans-I/O).

Wire format: 4-byte big-endian length, then that many bytes of UTF-8 JSON (one object).
The decoder is fed bytes as they arrive and yields complete messages; anything malformed or
larger than the limit raises ProtocolError, after which the connection must be closed.
"""

import json
import struct

from firmware.core import strictjson
from firmware.core.errors import ProtocolError

HEADER = 4
DEFAULT_MAX_FRAME = 64 * 1024
MAX_DEPTH = 8  # LAN messages are flat: hello, hb, cmd, result, local


def encode(msg: dict, max_frame: int = DEFAULT_MAX_FRAME) -> bytes:
    """Serialise one message into a frame."""
    if not isinstance(msg, dict):
        raise ProtocolError("a frame must carry a JSON object")
    body = json.dumps(msg).encode()
    if len(body) > max_frame:
        raise ProtocolError("frame of %d bytes exceeds the %d-byte limit" % (len(body), max_frame))
    return struct.pack(">I", len(body)) + body


def decode_body(body: bytes) -> dict:
    """Parse one frame body; refuse anything but a JSON object with a string 'type'."""
    msg = strictjson.loads(body, "frame", MAX_DEPTH, len(body))
    if not isinstance(msg, dict):
        raise ProtocolError("frame is not a JSON object")
    if not isinstance(msg.get("type"), str):
        raise ProtocolError("frame has no string 'type' field")
    return msg


class FrameDecoder:
    """Incremental decoder: feed() bytes, get back the complete messages."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = b""
        self.failed = False

    def feed(self, data: bytes) -> list:
        """Add received bytes; return the list of complete messages (dicts)."""
        if self.failed:
            raise ProtocolError("decoder already failed; close the connection")
        self._buf += data
        out = []
        while len(self._buf) >= HEADER:
            (n,) = struct.unpack(">I", self._buf[:HEADER])
            if n > self.max_frame:
                self.failed = True
                raise ProtocolError(
                    "frame of %d bytes exceeds the %d-byte limit" % (n, self.max_frame)
                )
            if len(self._buf) < HEADER + n:
                break
            body = self._buf[HEADER:HEADER + n]
            self._buf = self._buf[HEADER + n:]
            try:
                out.append(decode_body(body))
            except ProtocolError:
                self.failed = True
                raise
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)
