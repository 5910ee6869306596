"""Mamori certificate identities: who a certificate names, and TLS key pairs held in memory.

Shared by the gateway (LAN server), the device agent (LAN client) and provisioning (issuer):
a device certificate names ``urn:mamori:device:<id>`` and ``urn:mamori:model:<maker>/<model>``,
a gateway certificate ``urn:mamori:gateway:<id>`` and its site ``urn:mamori:site:<id>``.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from firmware.common.tlspolicy import apply_policy
from firmware.core.errors import AuthError
from firmware.core.ids import ID_HINT, valid_id

DEVICE_URI = "urn:mamori:device:"
MODEL_URI = "urn:mamori:model:"
GATEWAY_URI = "urn:mamori:gateway:"
SITE_URI = "urn:mamori:site:"


def lan_floor(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """The LAN's TLS floor on top of the crypto policy: TLS 1.3, peer certificate required."""
    apply_policy(ctx)  # gateway-wide floor: TLS 1.2 ECDHE + AEAD only
    if ssl.HAS_TLSv1_3:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def load_key_pair(ctx: ssl.SSLContext, cert_pem: str, key_pem: bytes) -> None:
    """Load a certificate + key held in memory (only an encrypted copy of the key hits disk)."""
    key = serialization.load_pem_private_key(key_pem, None)
    password = os.urandom(24).hex().encode()
    enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(password))
    with tempfile.TemporaryDirectory(prefix="mamori-tls-") as d:
        cert_path, key_path = Path(d) / "cert.pem", Path(d) / "key.pem"
        cert_path.write_text(cert_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(enc)
        ctx.load_cert_chain(str(cert_path), str(key_path), password=lambda: password)


def cert_uris(cert: x509.Certificate) -> list[str]:
    """The URI subject alternative names of a certificate (AuthError when malformed)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise AuthError("certificate extensions cannot be parsed")
    return [str(u) for u in ext.value.get_values_for_type(x509.UniformResourceIdentifier)]


def load_der(der: bytes) -> x509.Certificate:
    """A DER certificate (AuthError when it cannot be parsed, an altered version included)."""
    try:
        return x509.load_der_x509_certificate(der)
    except (ValueError, TypeError, x509.InvalidVersion):
        raise AuthError("peer certificate cannot be parsed")


def peer_identity(der: bytes) -> dict[str, Any]:
    """Device id, maker, model and serial from a device certificate (AuthError if none)."""
    cert = load_der(der)
    uris = cert_uris(cert)
    dev = [u[len(DEVICE_URI):] for u in uris if u.startswith(DEVICE_URI)]
    model = [u[len(MODEL_URI):] for u in uris if u.startswith(MODEL_URI)]
    if len(dev) != 1 or len(model) != 1 or "/" not in model[0]:
        raise AuthError("peer certificate is not a Mamori device certificate")
    if not valid_id(dev[0]):
        # the id becomes a file name, a topic level and a log principal: same syntax as
        # provisioning, so a certificate naming "../x" or "a/b" is refused here
        raise AuthError("peer certificate names device id %r, which does not follow the id "
                        "syntax" % dev[0][:64], ID_HINT)
    maker, mod = model[0].split("/", 1)
    return {"id": dev[0], "maker": maker, "model": mod, "transport": "ip",
            "serial": cert.serial_number}


def gateway_id_of(der: bytes) -> str:
    """The gateway id in a gateway certificate (AuthError when it is not one)."""
    cert = load_der(der)
    ids = [u[len(GATEWAY_URI):] for u in cert_uris(cert) if u.startswith(GATEWAY_URI)]
    if len(ids) != 1 or not valid_id(ids[0]):
        raise AuthError("the peer is not a Mamori gateway")
    return ids[0]


def spki_sha256(cert: x509.Certificate) -> str:
    """SHA-256 (hex) of a certificate's SubjectPublicKeyInfo: its key identity across renewals."""
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA256())
    h.update(der)
    return h.finalize().hex()
