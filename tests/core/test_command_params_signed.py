"""Portable: a command's signature covers its parameters (altered params are refused)."""

import binascii

from firmware.core import hmacsha
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import CommandAuthorizer, CommandRefused, signing_payload
from tests.core.portable import raises

KEY = b"p" * 32
NOW = 1_760_000_000


def _sign(payload: bytes) -> bytes:
    return hmacsha.mac(KEY, payload)


def _verify(payload: bytes, sig: bytes) -> bool:
    return _sign(payload) == sig


def _signed(params: dict) -> dict:
    env = {"v": 1, "id": "c-9", "gateway": "gw-1", "device": "shutter-1", "action": "set",
           "params": params, "nonce": "n0123456789abcdefp", "expires": NOW + 60,
           "requested_by": "op-7", "approved_by": ""}
    env["sig"] = binascii.b2a_base64(_sign(signing_payload(env))).decode().strip()
    return env


def _auth() -> CommandAuthorizer:
    acl = DeviceAcl([{"principal": "platform", "device": "shutter-1", "actions": ["set"]}])
    return CommandAuthorizer("gw-1", _verify, lambda: NOW, acl)


def test_signed_params_verify() -> None:
    cmd = _auth().check(_signed({"position": 10}))
    assert cmd["params"] == {"position": 10}


def test_params_altered_after_signing_are_refused() -> None:
    env = _signed({"position": 10})
    env["params"] = {"position": 100}
    exc = raises(CommandRefused, _auth().check, env)
    assert exc.reason == "bad-signature"


def test_params_added_after_signing_are_refused() -> None:
    env = _signed({})
    env["params"] = {"position": 100}
    exc = raises(CommandRefused, _auth().check, env)
    assert exc.reason == "bad-signature"


def test_params_encoding_is_unambiguous() -> None:
    a = _signed({"a": "1\nb=2"})
    b = _signed({"a": "1", "b": 2})
    assert a["sig"] != b["sig"]
