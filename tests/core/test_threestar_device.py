"""Portable tests: the device checks the platform's envelope of ★★★ actions itself.

The signature seam is an HMAC stand-in (MicroPython has no Ed25519); tests/trust drives the real
Ed25519 keys through a real gateway and device agent.
"""

import binascii

from firmware.core import frames, hmacsha
from firmware.core.command_auth import CommandRefused, signing_payload
from firmware.core.threestar import DEFAULT_ACTIONS, actions_for, can_verify, is_three_star
from firmware.device.portable.agent import DeviceAgent
from firmware.device.portable.threestar import ThreeStarGuard
from tests.core.portable import FakeClock, raises

KEY = b"p" * 32
NOW = 1_760_000_000


def _sign(payload: bytes, key: bytes = KEY) -> bytes:
    return hmacsha.mac(key, payload)


def _verify(payload: bytes, sig: bytes) -> bool:
    return _sign(payload) == sig


def _env(action: str = "unlock", key: "bytes | None" = KEY, **over: object) -> dict:
    env = {"v": 1, "id": "c-1", "gateway": "gw-1", "device": "door-1", "action": action,
           "params": {}, "nonce": "n0123456789abcdef", "expires": NOW + 60,
           "requested_by": "op-7", "approved_by": "sup-2"}
    for k in over:
        env[k] = over[k]
    if key is not None:
        env["sig"] = binascii.b2a_base64(_sign(signing_payload(env), key)).decode().strip()
    return env


def _agent(clock: "FakeClock | None" = None, three_star: "list | None" = None,
           verify: object = _verify) -> DeviceAgent:
    guard = ThreeStarGuard("door-1", "gw-1", three_star, verify, clock or FakeClock(NOW))
    a = DeviceAgent("door-1", kind="lock", guard=guard)
    a.receive(frames.encode({"type": "welcome", "gateway": "gw-1"}), 0)
    return a


def _cmd(agent: DeviceAgent, action: str, env: "dict | None", params: "dict | None" = None,
         cid: str = "1") -> dict:
    msg = {"type": "cmd", "cid": cid, "action": action, "params": params or {}}
    if env is not None:
        msg["env"] = env
    return frames.FrameDecoder().feed(agent.receive(frames.encode(msg), 1))[0]


def test_the_table_is_data_with_a_floor() -> None:
    assert actions_for(None) == DEFAULT_ACTIONS
    assert actions_for({"three_star": ["open"]}) == DEFAULT_ACTIONS + ("open",)
    assert actions_for({"three_star": ["Bad Name", 7]}) == DEFAULT_ACTIONS
    assert is_three_star("unlock", ["open"]) and is_three_star("open", ["open"])
    assert not is_three_star("lock", ["open"])
    assert can_verify(["ed25519"]) and not can_verify([]) and not can_verify("ed25519")


def test_signed_unlock_is_performed() -> None:
    a = _agent()
    assert frames.FrameDecoder().feed(a.hello(0))[0]["verifies"] == ["ed25519"]
    res = _cmd(a, "unlock", _env())
    assert res["ok"] is True and res["actual"] == {"locked": False}


def test_unsigned_or_missing_envelope_refused() -> None:
    a = _agent()
    assert _cmd(a, "unlock", None)["refused"] == "unsigned"
    assert _cmd(a, "unlock", _env(key=None))["refused"] == "unsigned"
    assert a.state == {"locked": True} and a.refusals == 2


def test_wrongly_signed_refused() -> None:
    a = _agent()
    assert _cmd(a, "unlock", _env(key=b"g" * 32))["refused"] == "bad-signature"
    forged = _env()
    forged["approved_by"] = "nobody"  # signed field changed after signing
    assert _cmd(a, "unlock", forged)["refused"] == "bad-signature"
    assert a.state == {"locked": True}


def test_envelope_for_another_target_refused() -> None:
    a = _agent()
    assert _cmd(a, "unlock", _env(device="door-2"))["refused"] == "wrong-device"
    assert _cmd(a, "unlock", _env(gateway="gw-2"))["refused"] == "wrong-gateway"
    # a genuine signed "disarm" cannot be replayed as "unlock"
    assert _cmd(a, "unlock", _env("disarm", nonce="n-other-0123456789"))["refused"] == \
        "wrong-action"
    assert a.state == {"locked": True}


def test_expired_and_far_future_refused() -> None:
    clock = FakeClock(NOW + 200)
    a = _agent(clock)
    assert _cmd(a, "unlock", _env())["refused"] == "expired"
    assert _cmd(a, "unlock", _env(expires=NOW + 200 + 3600))["refused"] == "expiry-too-far"


def test_replay_refused() -> None:
    a = _agent()
    env = _env()
    assert _cmd(a, "unlock", env)["ok"] is True
    a.local("lock", 2)
    assert _cmd(a, "unlock", env, cid="2")["refused"] == "replayed"
    assert a.state == {"locked": True}


def test_signed_params_are_executed_not_the_gateways() -> None:
    a = DeviceAgent("door-1", kind="shutter",
                    guard=ThreeStarGuard("door-1", "gw-1", ["set"], _verify, FakeClock(NOW)))
    a.receive(frames.encode({"type": "welcome"}), 0)
    env = _env("set", params={"position": 20})
    res = _cmd(a, "set", env, params={"position": 100})
    assert res["ok"] is True and res["actual"] == {"position": 20}


def test_port_without_ed25519_declares_it_and_refuses() -> None:
    a = _agent(verify=None)
    assert frames.FrameDecoder().feed(a.hello(0))[0]["verifies"] == []
    assert _cmd(a, "unlock", _env())["refused"] == "cannot-verify"
    assert _cmd(a, "lock", None)["ok"] is True  # ordinary actions still work


def test_local_operations_never_need_the_platform() -> None:
    a = _agent()
    frames.FrameDecoder().feed(a.local("unlock", 2))
    assert a.state == {"locked": False}


def test_guard_refuses_directly() -> None:
    g = ThreeStarGuard("door-1", "gw-1", None, _verify, FakeClock(NOW))
    assert g.guards("unlock") and not g.guards("lock")
    exc = raises(CommandRefused, g.check, "unlock", "not an object")
    assert exc.reason == "malformed"  # type: ignore[attr-defined]
