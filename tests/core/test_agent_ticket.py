"""Portable tests: the device agent presents its installation ticket until welcomed, once."""

from firmware.core import frames
from firmware.core.errors import AuthError
from firmware.device.portable.agent import DeviceAgent
from tests.core.portable import raises

TICKET = {"kind": "mamori-install-ticket", "payload": {"ticket_id": "t1"}, "sig": "x"}


def _hello(a: DeviceAgent) -> dict:
    return frames.FrameDecoder().feed(a.hello(0))[0]


def test_no_ticket_no_fields() -> None:
    h = _hello(DeviceAgent("d-1"))
    assert "ticket" not in h and "secret" not in h


def test_ticket_sent_until_welcome_then_never_again() -> None:
    a = DeviceAgent("d-1", ticket=TICKET, secret="ABCD-EFGH-IJKL-MNOP")
    h = _hello(a)
    assert h["ticket"] == TICKET and h["secret"] == "ABCD-EFGH-IJKL-MNOP"
    assert _hello(a)["ticket"] == TICKET  # a reconnect before any welcome presents it again
    a.receive(frames.encode({"type": "welcome", "gateway": "gw1"}), 0)
    h2 = _hello(a)
    assert "ticket" not in h2 and "secret" not in h2
    assert a.ticket is None and a.secret is None


def test_ticket_without_secret_is_not_sent() -> None:
    h = _hello(DeviceAgent("d-1", ticket=TICKET, secret=""))
    assert "ticket" not in h


def test_refused_ticket_keeps_it_for_the_installer_to_retry() -> None:
    a = DeviceAgent("d-1", ticket=TICKET, secret="S")
    raises(AuthError, a.receive, frames.encode({"type": "refused", "reason": "used"}), 0)
    assert a.ticket == TICKET
