"""Portable tests of the device agent state machine."""

from firmware.core import frames
from firmware.core.errors import AuthError, ProtocolError
from firmware.core.hello import parse_hello
from firmware.core.schema import FieldError
from firmware.device.portable.agent import DeviceAgent
from tests.core.portable import raises


def _decode(data: bytes) -> list:
    return frames.FrameDecoder().feed(data)


def test_hello_then_welcome_then_heartbeat() -> None:
    a = DeviceAgent("lock-1", kind="lock", interval=5)
    hello = _decode(a.hello(0))[0]
    assert hello["type"] == "hello" and hello["id"] == "lock-1"
    out = _decode(a.receive(frames.encode({"type": "welcome", "gateway": "gw1"}), 0))
    assert a.ready and out[0]["type"] == "hb" and out[0]["seq"] == 1
    assert a.poll(4.9) == b""
    assert _decode(a.poll(5.0))[0]["seq"] == 2


def test_command_reports_actual_state() -> None:
    a = DeviceAgent("lock-1", kind="lock")
    a.receive(frames.encode({"type": "welcome"}), 0)
    a.local("unlock", 1)
    res = _decode(a.receive(frames.encode({"type": "cmd", "cid": "7", "action": "lock"}), 1))[0]
    assert res["ok"] is True and res["cid"] == "7" and res["actual"] == {"locked": True}
    bad = _decode(a.receive(frames.encode({"type": "cmd", "cid": "8", "action": "fly"}), 1))[0]
    assert bad["ok"] is False and "unsupported" in bad["reason"]


def test_agent_without_a_platform_key_refuses_three_star_actions() -> None:
    a = DeviceAgent("lock-1", kind="lock")
    assert _decode(a.hello(0))[0]["verifies"] == []
    a.receive(frames.encode({"type": "welcome"}), 0)
    res = _decode(a.receive(frames.encode({"type": "cmd", "cid": "7", "action": "unlock"}), 1))[0]
    assert res["ok"] is False and res["refused"] == "cannot-verify"
    assert res["actual"] == {"locked": True} and a.state == {"locked": True}


def test_the_gateway_accepts_the_agents_hello_with_what_it_verifies() -> None:
    hello = _decode(DeviceAgent("lock-1", kind="lock").hello(0))[0]
    assert parse_hello(hello)["verifies"] == []
    hello["verifies"] = ["ed25519"]
    assert parse_hello(hello)["verifies"] == ["ed25519"]
    hello["verifies"] = "ed25519"  # not a list: refused by name
    assert raises(FieldError, parse_hello, hello).field == "verifies"


def test_command_before_welcome_is_a_protocol_error() -> None:
    a = DeviceAgent("s-1")
    raises(ProtocolError, a.receive, frames.encode({"type": "cmd", "cid": "1"}), 0)


def test_refusal_raises_auth_error() -> None:
    a = DeviceAgent("s-1")
    raises(AuthError, a.receive, frames.encode({"type": "refused", "reason": "x"}), 0)


def test_shutter_validates_position() -> None:
    a = DeviceAgent("sh-1", kind="shutter")
    a.receive(frames.encode({"type": "welcome"}), 0)
    msg = {"type": "cmd", "cid": "1", "action": "set", "params": {"position": 140}}
    assert _decode(a.receive(frames.encode(msg), 0))[0]["ok"] is False
    msg["params"] = {"position": 40}
    assert _decode(a.receive(frames.encode(msg), 0))[0]["actual"] == {"position": 40}


def test_local_operation_is_reported() -> None:
    a = DeviceAgent("lock-1", kind="lock")
    a.receive(frames.encode({"type": "welcome"}), 0)
    msg = _decode(a.local("unlock", 2))[0]
    assert msg["type"] == "local" and msg["state"] == {"locked": False}
