"""Portable: the small-site gateway's device list (HMAC-signed) and its admission verdicts."""

import json

from firmware.core import devicelist
from firmware.core.errors import AuthError, IntegrityError, PolicyError
from tests.core.portable import raises

KEY = b"k" * 32
LOCK = {"sha256": "aa" * 32, "id": "lock-1", "maker": "Acme", "model": "Lock 1", "serial": "11"}
GONE = {"sha256": "bb" * 32, "id": "lock-old", "maker": "Acme", "model": "Lock 1",
        "serial": "22"}
ODD = {"sha256": "cc" * 32, "id": "odd-1", "maker": "Acme", "model": "Odd", "serial": "33"}
PAYLOAD = {"site_id": "site-1", "gateway_id": "mcu-1", "level": 2, "number": 5,
           "issued": "2026-01-01T00:00:00+00:00", "devices": [LOCK, ODD], "revoked": [GONE],
           "allowlist": [{"maker": "Acme", "model": "Lock 1", "transports": ["ip"],
                          "min_firmware": "1.2"}]}
HELLO = {"type": "hello", "id": "lock-1", "maker": "Acme", "model": "Lock 1", "fw": "1.3.0",
         "interval": 10.0}


def _raw(payload: "dict | None" = None, key: bytes = KEY, gateway: str = "mcu-1") -> bytes:
    text = json.dumps(payload or PAYLOAD)
    return json.dumps(devicelist.seal(text, key, gateway)).encode()


def _hello(**over: object) -> dict:
    h = dict(HELLO)
    for k in over:
        h[k] = over[k]
    return h


def test_a_listed_device_is_admitted_with_its_identity() -> None:
    dl = devicelist.open_list(_raw(), KEY, "mcu-1", 5)
    ident = dl.admit("aa" * 32, HELLO)
    assert ident["id"] == "lock-1" and ident["model"] == "Lock 1" and ident["level"] == 2


def test_each_refusal_says_why() -> None:
    dl = devicelist.open_list(_raw(), KEY, "mcu-1")
    assert "no client certificate" in raises(AuthError, dl.admit, None, HELLO).message
    gone = raises(AuthError, dl.admit, "bb" * 32, _hello(id="lock-old"))
    assert "serial 22 is revoked" in gone.message and gone.refusal == "credential-revoked"
    assert "not on this gateway's device list #5" in raises(
        AuthError, dl.admit, "dd" * 32, HELLO).message
    other = raises(AuthError, dl.admit, "aa" * 32, _hello(id="lock-2"))
    assert other.refusal == "identity-mismatch"
    assert raises(AuthError, dl.admit, "aa" * 32, _hello(model="Lock 2")).refusal \
        == "identity-mismatch"
    old = raises(PolicyError, dl.admit, "aa" * 32, _hello(fw="1.1.9"))
    assert old.refusal == "firmware-too-old"
    assert "not on the level-2 allowlist" in raises(
        PolicyError, dl.admit, "cc" * 32, _hello(id="odd-1", model="Odd")).message


def test_an_altered_foreign_or_older_list_is_refused() -> None:
    doc = json.loads(_raw())
    doc["payload"] = doc["payload"].replace("lock-old", "lock-new")  # un-revoke, say
    why = raises(IntegrityError, devicelist.open_list, json.dumps(doc).encode(), KEY, "mcu-1")
    assert "does not verify" in why.message
    assert "does not verify" in raises(IntegrityError, devicelist.open_list, _raw(),
                                       b"x" * 32, "mcu-1").message
    assert "for gateway 'mcu-2'" in raises(IntegrityError, devicelist.open_list,
                                           _raw(gateway="mcu-2"), KEY, "mcu-1").message
    assert "older than #6" in raises(IntegrityError, devicelist.open_list, _raw(), KEY,
                                     "mcu-1", 6).message
    bad = dict(PAYLOAD)
    bad["devices"] = [dict(LOCK, sha256="zz" * 32)]
    assert "malformed" in raises(IntegrityError, devicelist.open_list, _raw(bad), KEY,
                                 "mcu-1").message
    assert "malformed" in raises(IntegrityError, devicelist.open_list, b"[" * 50 + b"]" * 50,
                                 KEY, "mcu-1").message
