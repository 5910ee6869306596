"""Ed25519 signature checks for the platform's command key (CPython: ``cryptography``).

The portable code (``firmware.core.command_auth``, the device's ★★★ guard) takes a
``verify(payload, signature) -> bool`` callable; this module makes one from the site's raw
32-byte command key, for the gateway and for CPython device agents alike.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.core.errors import ConfigError


def ed25519_verifier(public_key: bytes) -> Callable[[bytes, bytes], bool]:
    """A verify(payload, signature) callable for a raw 32-byte Ed25519 public key."""
    key = Ed25519PublicKey.from_public_bytes(public_key)

    def verify(payload: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    return verify


def raw_key_b64(text: object, where: str = "platform_command_key") -> bytes:
    """The raw 32-byte key from its base64 text (ConfigError naming `where` otherwise)."""
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ConfigError("must be a base64 raw 32-byte Ed25519 public key", field=where)
    return raw
