"""Loading the key that verifies a gateway's signed self-test reports (on the host)."""

from __future__ import annotations

from pathlib import Path

from firmware.core.errors import ConfigError
from firmware.gateway.selftest.signing import PublicKey


def load_public(path: Path) -> PublicKey:
    """A report-signing public key (Ed25519 or P-256), with a clear error."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        pub = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load public key: {type(exc).__name__}", str(path))
    if not isinstance(pub, (ed25519.Ed25519PublicKey, ec.EllipticCurvePublicKey)):
        raise ConfigError("report keys are Ed25519 or EC P-256", str(path))
    return pub
