"""TLS client context for the platform connection (SR3-H-4) (CPython).

TLS 1.3 preferred, 1.2 minimum; for 1.2 only ECDHE key exchange with AEAD ciphers; the platform
CA is pinned (the system trust store is never loaded); the broker's host name is verified; the
gateway authenticates with its client certificate.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from cryptography.hazmat.primitives import serialization

from firmware.core.errors import ConfigError
from firmware.gateway.wan.identity import WanIdentity

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1:!kRSA:!PSK:!SRP"


def harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Apply the version floor, the ECDHE+AEAD suite list and the no-compression options."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(identity: WanIdentity) -> ssl.SSLContext:
    """A client context that trusts only the platform CA and presents the gateway certificate."""
    ctx = harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(identity.platform_ca_path))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the platform CA: {exc.__class__.__name__}",
                          str(identity.platform_ca_path), hint="re-install the bundle")
    try:
        if identity.client_key_path is not None:
            ctx.load_cert_chain(str(identity.client_cert_path), str(identity.client_key_path))
        else:
            _load_key_bytes(ctx, identity)
    except (OSError, ssl.SSLError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot load the gateway certificate/key: {exc.__class__.__name__}",
                          str(identity.client_cert_path),
                          hint="check that the key matches the certificate")
    return ctx


def _load_key_bytes(ctx: ssl.SSLContext, identity: WanIdentity) -> None:
    # ssl can only read keys from files: the key is re-encrypted under a one-time password held
    # only in memory, so the 0600 file (removed at once, but left behind by a crash) is no secret
    assert identity.client_key_pem is not None
    key = serialization.load_pem_private_key(identity.client_key_pem, None)
    password = os.urandom(24).hex().encode()
    enc = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(password))
    with tempfile.TemporaryDirectory(prefix="mamori-key-") as d:
        path = os.path.join(d, "k.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, enc)
        finally:
            os.close(fd)
        ctx.load_cert_chain(str(identity.client_cert_path), path, password=lambda: password)
