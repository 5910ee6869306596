"""Access-log key escrow to the platform: HPKE-sealed, bound to gateway and log."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from firmware.core.errors import MamoriError
from firmware.gateway.wan.logupload import decode_item, encode_item, open_escrow, seal_escrow

BUNDLE = {"log_id": "log-1", "key0": "c2VjcmV0", "data_key": "ZGF0YQ==", "pub": "x"}


def test_escrow_round_trip_and_never_in_clear() -> None:
    key = X25519PrivateKey.generate()
    body = encode_item({"type": "keys", "log_id": "log-1", "bundle": BUNDLE},
                       key.public_key(), "gw-1")
    assert body is not None and "c2VjcmV0" not in str(body) and "ZGF0YQ==" not in str(body)
    assert decode_item(body, key, "gw-1")["bundle"] == BUNDLE


@pytest.mark.parametrize("gateway,log_id", [("gw-2", "log-1"), ("gw-1", "log-2")])
def test_escrow_bound_to_gateway_and_log(gateway: str, log_id: str) -> None:
    key = X25519PrivateKey.generate()
    sealed = seal_escrow(BUNDLE, key.public_key(), "gw-1", "log-1")
    with pytest.raises(MamoriError):
        open_escrow(sealed, key, gateway, log_id)


def test_escrow_refuses_tampering_and_foreign_key() -> None:
    key = X25519PrivateKey.generate()
    sealed = base64.b64decode(seal_escrow(BUNDLE, key.public_key(), "gw-1", "log-1"))
    flipped = base64.b64encode(sealed[:-1] + bytes([sealed[-1] ^ 1])).decode()
    with pytest.raises(MamoriError):
        open_escrow(flipped, key, "gw-1", "log-1")
    with pytest.raises(MamoriError):
        open_escrow(base64.b64encode(sealed).decode(), X25519PrivateKey.generate(), "gw-1",
                    "log-1")


def test_escrow_bundle_for_another_log_refused() -> None:
    key = X25519PrivateKey.generate()
    sealed = seal_escrow(dict(BUNDLE, log_id="log-9"), key.public_key(), "gw-1", "log-1")
    with pytest.raises(MamoriError, match="another log"):
        open_escrow(sealed, key, "gw-1", "log-1")


def test_keys_not_sent_without_a_pinned_recipient() -> None:
    assert encode_item({"type": "keys", "log_id": "l", "bundle": BUNDLE}, None, "gw") is None
    seg = encode_item({"type": "segment", "log_id": "l", "name": "seg-00000000.log",
                       "data": b"\x00\x01", "complete": False}, None, "gw")
    assert seg is not None and decode_item(seg, None, "gw")["data"] == b"\x00\x01"
