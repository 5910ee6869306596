"""Build and sign platform command envelopes (the gateway checks them with command_auth)."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.core.command_auth import ENVELOPE_VERSION, HIGH_RISK_ACTIONS, signing_payload

DEFAULT_TTL = 60


def new_envelope(gateway: str, device: str, action: str, *, ttl: int = DEFAULT_TTL,
                 requested_by: str = "", approved_by: str = "",
                 params: dict[str, Any] | None = None, now: float | None = None) -> dict[str, Any]:
    """An unsigned command envelope with a fresh id, nonce and expiry."""
    now = time.time() if now is None else now
    return {"v": ENVELOPE_VERSION, "id": "c-" + secrets.token_hex(8), "gateway": gateway,
            "device": device, "action": action, "params": params or {},
            "nonce": secrets.token_hex(16), "expires": int(now) + ttl,
            "requested_by": requested_by, "approved_by": approved_by}


def sign(env: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Add the Ed25519 signature over the envelope's signing payload."""
    env = dict(env)
    env["sig"] = base64.b64encode(key.sign(signing_payload(env))).decode()
    return env


def needs_signature(action: str) -> bool:
    """True for ★★★ actions the gateway refuses unsigned."""
    return action in HIGH_RISK_ACTIONS
