"""Portable tests: refusal codes reach the device agent as words the installer can act on."""

from firmware.core import frames, refusals
from firmware.core.errors import AuthError, ConfigError, PolicyError
from firmware.device.portable.agent import DeviceAgent


def _refused(code: object) -> "tuple[DeviceAgent, str]":
    a = DeviceAgent("d-1")
    msg = {"type": "refused", "reason": "authentication failed"}
    if code is not None:
        msg["code"] = code
    try:
        a.receive(frames.encode(msg), 0)
    except AuthError as exc:
        return a, str(exc)
    raise AssertionError("not refused")


def test_every_code_explains_what_happened_and_what_to_do() -> None:
    for code in refusals.CODES:
        a, text = _refused(code)
        what, todo = refusals.CODES[code]
        assert a.refusal == code and what in text and todo in text


def test_unknown_or_missing_codes_read_as_not_authorised() -> None:
    for code in (None, "serial 1234 revoked", 7):
        a, text = _refused(code)
        assert refusals.CODES[refusals.NOT_AUTHORISED][0] in text
    assert refusals.refusal_message("anything")["code"] == refusals.NOT_AUTHORISED


def test_code_of_an_error() -> None:
    assert refusals.code_of(refusals.coded(AuthError("x"), refusals.TICKET_USED)) == \
        refusals.TICKET_USED
    assert refusals.code_of(ConfigError("broken policy")) == refusals.GATEWAY_POLICY
    assert refusals.code_of(PolicyError("not on the allowlist")) == refusals.MODEL_NOT_ALLOWED
    assert refusals.code_of(AuthError("no certificate")) == refusals.NOT_AUTHORISED
