"""Portable tests of platform command envelope checks (run under pytest and MicroPython).

The signature seam is exercised with an HMAC stand-in here (MicroPython has no Ed25519); the
CPython WAN tests use real Ed25519 keys end to end.
"""

import binascii

from firmware.core import hmacsha
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import (
    CommandAuthorizer,
    CommandRefused,
    LocalOperations,
    ReplayCache,
    signing_payload,
)
from tests.core.portable import FakeClock, raises

KEY = b"k" * 32
NOW = 1_760_000_000


def _sign(payload: bytes) -> bytes:
    return hmacsha.mac(KEY, payload)


def _verify(payload: bytes, sig: bytes) -> bool:
    return hmacsha.equal(_sign(payload), sig)


def _env(action: str = "unlock", signed: bool = True, **over: object) -> dict:
    env = {"v": 1, "id": "c-1", "gateway": "gw-1", "device": "door-1", "action": action,
           "params": {}, "nonce": "n0123456789abcdef", "expires": NOW + 60,
           "requested_by": "op-7", "approved_by": "sup-2"}
    for k in over:
        env[k] = over[k]
    if signed:
        env["sig"] = binascii.b2a_base64(_sign(signing_payload(env))).decode().strip()
    return env


def _auth(wall: "FakeClock | None" = None, mono: "FakeClock | None" = None) -> CommandAuthorizer:
    acl = DeviceAcl([{"principal": "platform", "device": "door-1",
                      "actions": ["unlock", "lock", "status"]}])
    wall = wall or FakeClock(NOW)
    mono = mono or FakeClock(5.0)
    return CommandAuthorizer("gw-1", _verify, wall, acl, LocalOperations(mono, 60.0),
                             ReplayCache(8), max_ttl=300.0, skew=10.0)


def _reason(auth: CommandAuthorizer, env: object, topic_device: "str | None" = None) -> str:
    exc = raises(CommandRefused, auth.check, env, topic_device)
    return exc.reason  # type: ignore[attr-defined]


def test_signed_unlock_accepted() -> None:
    cmd = _auth().check(_env(), "door-1")
    assert cmd["action"] == "unlock" and cmd["requested_by"] == "op-7"


def test_unsigned_high_risk_refused() -> None:
    assert _reason(_auth(), _env(signed=False)) == "unsigned"
    assert _reason(_auth(), _env("disarm", signed=False, device="door-1")) == "unsigned"


def test_unsigned_low_risk_allowed() -> None:
    assert _auth().check(_env("lock", signed=False))["action"] == "lock"


def test_forged_and_tampered_refused() -> None:
    env = _env()
    env["sig"] = binascii.b2a_base64(b"x" * 32).decode().strip()
    assert _reason(_auth(), env) == "bad-signature"
    for field, value in (("action", "disarm"), ("nonce", "n0123456789abcdeX"),
                         ("expires", NOW + 61), ("approved_by", "mallory"), ("id", "c-2")):
        env = _env()
        env[field] = value
        assert _reason(_auth(), env) == "bad-signature", field


def test_signature_moved_to_other_device_refused() -> None:
    env = _env()
    env["device"] = "door-2"
    assert _reason(_auth(), env) == "bad-signature"


def test_wrong_gateway_and_wrong_device() -> None:
    assert _reason(_auth(), _env(gateway="gw-2")) == "wrong-gateway"
    assert _reason(_auth(), _env(), "door-2") == "wrong-device"


def test_expired_and_too_far() -> None:
    wall = FakeClock(NOW)
    auth = _auth(wall)
    wall.advance(71)
    assert _reason(auth, _env()) == "expired"
    assert _reason(_auth(), _env(expires=NOW + 3600)) == "expiry-too-far"


def test_replay_refused_and_forgotten_after_expiry() -> None:
    wall = FakeClock(NOW)
    auth = _auth(wall)
    auth.check(_env())
    assert _reason(auth, _env()) == "replayed"
    # a replayed nonce stays refused: it is forgotten only once its command has expired
    wall.advance(100)
    assert _reason(auth, _env()) == "expired"


def test_replay_cache_bounded_fails_closed() -> None:
    cache = ReplayCache(2)
    cache.check_and_record("a" * 16, 10.0, 0.0)
    cache.check_and_record("b" * 16, 10.0, 0.0)
    assert raises(CommandRefused, cache.check_and_record, "c" * 16, 10.0, 0.0).reason \
        == "replay-cache-full"  # type: ignore[attr-defined]
    cache.check_and_record("c" * 16, 20.0, 11.0)  # expired entries were purged
    assert len(cache) == 1


def test_replay_cache_persists() -> None:
    saved = []
    cache = ReplayCache(8, lambda n, e: saved.append((n, e)))
    cache.check_and_record("a" * 16, 50.0, 0.0)
    again = ReplayCache(8)
    again.load(saved + [("b" * 16, 1.0)], 10.0)
    assert len(again) == 1
    raises(CommandRefused, again.check_and_record, "a" * 16, 50.0, 10.0)


def test_acl_refusal() -> None:
    assert _reason(_auth(), _env("disarm")) == "acl"
    assert _reason(_auth(), _env(device="garage")) == "acl"


def test_local_operation_priority() -> None:
    mono = FakeClock(5.0)
    auth = _auth(mono=mono)
    auth.local_ops.record("door-1", "lock", "resident")  # type: ignore[union-attr]
    exc = raises(CommandRefused, auth.check, _env())
    assert exc.reason == "local-priority"  # type: ignore[attr-defined]
    assert "lock by resident" in str(exc)
    # the same action as the local one is no conflict
    assert auth.check(_env("lock", signed=False, nonce="n-other-123456789"))["action"] == "lock"
    mono.advance(61)
    assert auth.check(_env(nonce="n-later-123456789"))["action"] == "unlock"


def test_malformed_refused() -> None:
    auth = _auth()
    bads = [dict(v=2), dict(nonce="short"), dict(device="a/b"), dict(device="x" * 65),
            dict(expires="soon"), dict(expires=True), dict(params=[1]),
            dict(params={"k": {"nested": 1}}), dict(action=""), dict(gateway="+")]
    for bad in ["text", [1], {}] + [_env(signed=False, **b) for b in bads]:
        assert _reason(auth, bad) == "malformed", bad
    env = _env()
    env["sig"] = "!!!notbase64!!!"
    assert _reason(auth, env) in ("malformed", "bad-signature")


def test_verifier_exception_is_refusal() -> None:
    def broken(payload: bytes, sig: bytes) -> bool:
        raise RuntimeError("boom")

    auth = _auth()
    auth._verify = broken
    assert _reason(auth, _env()) == "bad-signature"
