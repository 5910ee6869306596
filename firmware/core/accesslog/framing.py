"""On-disk framing of access-log segments (portable).

A segment is a sequence of frames ``type(1) | length(4, big endian) | body | crc32(4)``. The CRC
only tells a torn write from a complete frame; integrity comes from the hash chain and seals.
The first frame of every segment is a header (type H, JSON) that carries the chain state at the
segment's start, so a segment can be verified after older ones were pruned.
"""

import binascii
import struct

from firmware.core import schema, strictjson
from firmware.core.accesslog import docs
from firmware.core.accesslog.encoding import canonical
from firmware.core.errors import IntegrityError, ProtocolError

HEADER = b"H"
RECORD = b"R"
CHECKPOINT = b"C"
TYPES = (HEADER, RECORD, CHECKPOINT)
OVERHEAD = 9
MAX_BODY = 65536
FORMAT = "mamori-accesslog"
VERSION = 1


def crc(data: "bytes | memoryview") -> int:
    """CRC-32 of a frame's type, length and body."""
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(ftype: bytes, body: bytes) -> bytes:
    """One complete frame."""
    if len(body) > MAX_BODY:
        raise ValueError("frame body of %d bytes exceeds %d" % (len(body), MAX_BODY))
    head = ftype + struct.pack(">I", len(body))
    return head + body + struct.pack(">I", crc(head + body))


def encode_header(log_id: str, segment: int, first_seq: int, prev: bytes, epoch: int) -> bytes:
    """The header frame's body (canonical JSON)."""
    doc = {
        "format": FORMAT, "v": VERSION, "log": log_id, "seg": segment, "seq": first_seq,
        "prev": binascii.hexlify(prev).decode(), "epoch": epoch,
    }
    return canonical(doc)


def parse_header(body: bytes) -> dict:
    """Validate a header body; IntegrityError naming what is wrong."""
    try:
        doc = strictjson.loads_object(body, "segment header", docs.MAX_DEPTH, MAX_BODY)
    except ProtocolError:
        raise IntegrityError("segment header is not valid JSON")
    if doc.get("format") != FORMAT:
        raise IntegrityError("not a Mamori access-log segment (foreign header)")
    if doc.get("v") != VERSION:
        raise IntegrityError("unsupported access-log version %r" % (doc.get("v"),))
    try:
        schema.check(doc, docs.HEADER, "segment header")
    except ProtocolError as exc:
        raise IntegrityError(exc.message)
    doc["prev_bytes"] = binascii.unhexlify(doc["prev"])
    return doc


def _valid_frame_at(data: bytes, pos: int) -> bool:
    end = len(data)
    if pos + OVERHEAD > end or data[pos:pos + 1] not in TYPES:
        return False
    n = struct.unpack(">I", data[pos + 1:pos + 5])[0]
    if n > MAX_BODY or pos + OVERHEAD + n > end:
        return False
    stop = pos + 5 + n
    return struct.unpack(">I", data[stop:stop + 4])[0] == crc(data[pos:stop])


def scan(data: bytes, allow_torn: bool = True) -> tuple:
    """Split a segment into frames.

    Returns (frames, end, problem) where frames is a list of (offset, type, body), end is the
    offset after the last complete frame, and problem is None, ("torn", detail) when the file
    ends inside one frame (a write cut by a crash) or ("corrupt", detail) when a frame is damaged.
    """
    frames: list = []
    pos = 0
    end = len(data)
    mv = memoryview(data)
    while pos < end:
        if end - pos < OVERHEAD:
            return frames, pos, _tail(data, pos, allow_torn, "short frame")
        ftype = bytes(mv[pos:pos + 1])
        n = struct.unpack(">I", mv[pos + 1:pos + 5])[0]
        if ftype not in TYPES:
            return frames, pos, ("corrupt", "unknown frame type at offset %d" % pos)
        if n > MAX_BODY:
            return frames, pos, ("corrupt", "frame length %d out of range at offset %d" % (n, pos))
        stop = pos + 5 + n
        if stop + 4 > end:
            return frames, pos, _tail(data, pos, allow_torn, "frame runs past the end")
        if struct.unpack(">I", mv[stop:stop + 4])[0] != crc(mv[pos:stop]):
            return frames, pos, ("corrupt", "frame checksum mismatch at offset %d" % pos)
        frames.append((pos, ftype, bytes(mv[pos + 5:stop])))
        pos = stop + 4
    return frames, pos, None


def _tail(data: bytes, pos: int, allow_torn: bool, what: str) -> tuple:
    # A crash leaves at most one partial frame: a complete frame further on means damage.
    if allow_torn:
        for p in range(pos + 1, len(data) - OVERHEAD + 1):
            if _valid_frame_at(data, p):
                return ("corrupt", "%s at offset %d, but complete frames follow" % (what, pos))
        return ("torn", "%s at offset %d: %d bytes of an unfinished write"
                % (what, pos, len(data) - pos))
    return ("corrupt", "%s at offset %d" % (what, pos))
