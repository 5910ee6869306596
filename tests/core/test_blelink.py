"""Portable tests of BLE link framing, sequencing, replay counters and pairing policy."""

from firmware.core import blelink
from firmware.core.errors import AuthError, ProtocolError
from tests.core.portable import raises


def test_frame_roundtrip() -> None:
    f = blelink.encode(blelink.DATA, 7, b"abc")
    assert blelink.decode(f) == (blelink.DATA, 7, b"abc")


def test_malformed_frames_refused() -> None:
    raises(ProtocolError, blelink.decode, b"\x03\x00")
    raises(ProtocolError, blelink.decode, b"\x09" + bytes(10))
    good = blelink.encode(blelink.HS1, 0, b"xyz")
    raises(ProtocolError, blelink.decode, good[:-1])
    raises(ProtocolError, blelink.decode, good + b"!")
    raises(ProtocolError, blelink.decode, b"\x03" + bytes(10) + bytes(blelink.MAX_PAYLOAD + 1))
    raises(ProtocolError, blelink.encode, blelink.DATA, 0, bytes(blelink.MAX_PAYLOAD + 1))


def test_replay_guard() -> None:
    g = blelink.ReplayGuard()
    g.check(0)
    g.check(1)
    raises(ProtocolError, g.check, 1)
    raises(ProtocolError, g.check, 0)
    g.check(5)


def test_handshake_sequence_responder() -> None:
    s = blelink.HandshakeSequence("responder")
    raises(ProtocolError, s.expect, blelink.HS2)  # reflected message 2
    raises(ProtocolError, s.expect, blelink.DATA)
    s.expect(blelink.HS1)
    raises(ProtocolError, s.expect, blelink.HS1)  # replayed message 1 in the same session
    s.sent(blelink.HS2)
    assert s.done
    s.expect(blelink.DATA)
    raises(ProtocolError, s.expect, blelink.HS1)


def test_handshake_sequence_initiator() -> None:
    s = blelink.HandshakeSequence("initiator")
    raises(ProtocolError, s.expect, blelink.HS2)
    s.sent(blelink.HS1)
    raises(ProtocolError, s.expect, blelink.HS1)  # reflected message 1
    s.expect(blelink.HS2)
    assert s.done


def test_only_le_secure_connections() -> None:
    blelink.check_pairing("le-secure-connections")
    raises(AuthError, blelink.check_pairing, "legacy")
    raises(AuthError, blelink.check_pairing, "legacy-just-works")
