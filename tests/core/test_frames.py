"""Portable tests of the LAN frame codec (run under pytest and MicroPython)."""

from firmware.core import frames
from firmware.core.errors import ProtocolError
from tests.core.portable import raises


def test_roundtrip_single_frame() -> None:
    dec = frames.FrameDecoder()
    assert dec.feed(frames.encode({"type": "hello", "id": "d1"})) == [{"type": "hello", "id": "d1"}]


def test_split_across_feeds() -> None:
    data = frames.encode({"type": "hb", "seq": 7}) + frames.encode({"type": "hb", "seq": 8})
    dec = frames.FrameDecoder()
    out = []
    for i in range(len(data)):
        out += dec.feed(data[i:i + 1])
    assert [m["seq"] for m in out] == [7, 8]
    assert dec.pending == 0


def test_oversized_length_refused_before_buffering() -> None:
    dec = frames.FrameDecoder(max_frame=100)
    exc = raises(ProtocolError, dec.feed, b"\x00\x01\x00\x00")
    assert "exceeds" in str(exc)
    raises(ProtocolError, dec.feed, b"")


def test_malformed_json_refused() -> None:
    dec = frames.FrameDecoder()
    raises(ProtocolError, dec.feed, b"\x00\x00\x00\x03{x}")


def test_non_object_and_missing_type_refused() -> None:
    raises(ProtocolError, frames.decode_body, b"[1,2]")
    raises(ProtocolError, frames.decode_body, b'{"id": 1}')
    raises(ProtocolError, frames.decode_body, b"\xff\xfe")


def test_encode_refuses_oversized() -> None:
    raises(ProtocolError, frames.encode, {"type": "x", "pad": "a" * 200}, 50)
