"""Sign and verify a self-test JSON report (Ed25519 or ECDSA P-256, key given by the caller)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from firmware.core.errors import ConfigError, IntegrityError
from firmware.gateway.selftest.report import canonical

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """Load a PEM signing key (Ed25519 or EC P-256)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load signing key: {type(exc).__name__}", str(path),
                          hint="a PEM Ed25519 or EC P-256 private key")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key
    raise ConfigError("signing key must be Ed25519 or EC P-256", str(path))


def _raw_public(pub: PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(pub: PublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex."""
    return hashlib.sha256(_raw_public(pub)).hexdigest()


def sign_report(report: dict[str, Any], key: PrivateKey) -> dict[str, Any]:
    """Wrap the report in an envelope with a signature over its canonical JSON."""
    data = canonical(report)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        alg, sig = "ed25519", key.sign(data)
    else:
        alg, sig = "ecdsa-p256-sha256", key.sign(data, ec.ECDSA(hashes.SHA256()))
    return {"report": report,
            "signature": {"alg": alg, "keyid": key_id(key.public_key()),
                          "sig": base64.b64encode(sig).decode("ascii")}}


def verify_report(envelope: dict[str, Any], pub: PublicKey) -> dict[str, Any]:
    """Return the report when the signature verifies with this key; IntegrityError otherwise."""
    try:
        report = envelope["report"]
        sig_info = envelope["signature"]
        sig = base64.b64decode(sig_info["sig"], validate=True)
        alg = sig_info["alg"]
    except (KeyError, TypeError, ValueError):
        raise IntegrityError("signed report is malformed")
    if not isinstance(report, dict) or not isinstance(sig_info, dict):
        raise IntegrityError("signed report is malformed")
    if sig_info.get("keyid") != key_id(pub):
        raise IntegrityError("report was signed by another key")
    data = canonical(report)
    try:
        if alg == "ed25519" and isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, data)
        elif alg == "ecdsa-p256-sha256" and isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise IntegrityError(f"signature algorithm {alg!r} does not match the key")
    except InvalidSignature:
        raise IntegrityError("report signature does not verify (tampered report)")
    return dict(report)
