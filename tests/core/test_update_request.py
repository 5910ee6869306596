"""Update requests: shape, signature binding (URL included), board, expiry and replay."""

from firmware.core import hmacsha
from firmware.core.command_auth import CommandRefused, ReplayCache
from firmware.core.update.request import UpdateRequestChecker, parse_request, signing_payload
from tests.core.portable import raises

KEY = b"k" * 32


def _verify(payload: bytes, sig: bytes) -> bool:
    # HMAC stands in for Ed25519 here: the checker only sees verify(payload, sig).
    return hmacsha.mac(KEY, payload) == sig


def _req(**kw: object) -> dict:
    import binascii

    r = {"v": 1, "id": "u-1", "gateway": "gw-1", "board": "sim",
         "url": "https://updates.example/repo", "min_version": "", "nonce": "n" * 16,
         "expires": 1000, "requested_by": "ops"}
    for k in kw:
        r[k] = kw[k]
    sig = hmacsha.mac(KEY, signing_payload(r))
    r["sig"] = binascii.b2a_base64(sig).decode().strip()
    return r


def _reason(checker: UpdateRequestChecker, raw: object) -> str:
    try:
        checker.check(raw)
    except CommandRefused as exc:
        return exc.reason
    return "accepted"


def _checker() -> UpdateRequestChecker:
    return UpdateRequestChecker("gw-1", "sim", _verify, lambda: 900.0, ReplayCache())


def test_valid_request_accepted_once() -> None:
    c = _checker()
    assert c.check(_req())["url"] == "https://updates.example/repo"
    assert _reason(c, _req()) == "replayed"


def test_signature_binds_url_and_board() -> None:
    r = _req()
    r["url"] = "https://evil.example/repo"
    assert _reason(_checker(), r) == "bad-signature"
    r = _req()
    r["gateway"] = "gw-2"
    assert _reason(_checker(), r) == "wrong-gateway"
    assert _reason(_checker(), _req(board="rpi4")) == "wrong-board"


def test_unsigned_malformed_expired() -> None:
    r = _req()
    del r["sig"]
    assert _reason(_checker(), r) == "unsigned"
    assert _reason(_checker(), _req(url="file:///etc/passwd")) == "malformed"
    assert _reason(_checker(), _req(min_version="x.y")) == "malformed"
    assert _reason(_checker(), "nope") == "malformed"
    assert _reason(_checker(), _req(expires=10)) == "expired"
    assert _reason(_checker(), _req(expires=100000)) == "expiry-too-far"
    raises(CommandRefused, parse_request, {"v": 2})
