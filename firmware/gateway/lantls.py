"""Mutual TLS for LAN devices: SSLContext builders, peer certificate -> device identity (CPython).

Server side (the gateway): TLS 1.3 only (TLS 1.2 with ECDHE + AEAD suites only if the OpenSSL
build lacks 1.3), client certificate required and verified against the site CA chain with the
site CRL (leaf check), no session tickets (every connection authenticates afresh). Build the
context once and reuse it for every connection. After the handshake ``DeviceAuthorizer`` maps
the certificate to a device identity, re-checks revocation against the current CRL file (which
the platform may have refreshed), and checks the model against the signed allowlist.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from firmware.core.errors import AuthError, ConfigError, IntegrityError, PolicyError
from firmware.gateway.install import IDENTITY, installed_identity, tls_key_passphrase
from firmware.gateway.signeddoc import verify_doc
from firmware.gateway.tlspolicy import apply_policy

DEVICE_URI = "urn:mamori:device:"
MODEL_URI = "urn:mamori:model:"
GATEWAY_URI = "urn:mamori:gateway:"


def _harden(ctx: ssl.SSLContext) -> ssl.SSLContext:
    apply_policy(ctx)  # gateway-wide floor: TLS 1.2 ECDHE + AEAD only
    if ssl.HAS_TLSv1_3:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(state_dir: Path, board: dict | None = None) -> ssl.SSLContext:
    """The gateway's LAN server context: mutual TLS against the installed site CA and CRL."""
    ident = Path(state_dir) / IDENTITY
    installed_identity(state_dir)
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_verify_locations(cafile=str(ident / "ca-chain.pem"))
    ctx.load_verify_locations(cafile=str(ident / "crl.pem"))
    ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF | ssl.VERIFY_X509_STRICT
    passphrase = tls_key_passphrase(state_dir, board)
    ctx.load_cert_chain(str(ident / "gateway.pem"), str(ident / "gateway-key.pem"),
                        password=lambda: passphrase)
    ctx.num_tickets = 0
    return ctx


def load_credentials(path: Path) -> dict:
    """Read a device credential file written by `mamori provision device`."""
    try:
        creds = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("credential file is missing", str(path))
    except ValueError:
        raise ConfigError("credential file is not valid JSON", str(path))
    if not isinstance(creds, dict) or creds.get("format") != "mamori-device-credentials/1":
        raise ConfigError("is not a Mamori device credential file", str(path))
    return creds


def client_context(creds: dict) -> ssl.SSLContext:
    """A device's TLS client context from IP credentials (verifies the gateway by site CA)."""
    if creds.get("transport") != "ip":
        raise ConfigError("credentials are for %s, not ip" % creds.get("transport"))
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False  # LAN addresses vary; the peer is checked by CA + gateway URI
    ctx.load_verify_locations(cadata=creds["ca_chain"])
    load_key_pair(ctx, creds["certificate"], creds["private_key"].encode())
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
    """The URI subject alternative names of a certificate."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [str(u) for u in ext.value.get_values_for_type(x509.UniformResourceIdentifier)]


def peer_identity(der: bytes) -> dict[str, Any]:
    """Device id, maker, model and serial from a device certificate (AuthError if none)."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        raise AuthError("peer certificate cannot be parsed")
    uris = cert_uris(cert)
    dev = [u[len(DEVICE_URI):] for u in uris if u.startswith(DEVICE_URI)]
    model = [u[len(MODEL_URI):] for u in uris if u.startswith(MODEL_URI)]
    if len(dev) != 1 or len(model) != 1 or "/" not in model[0]:
        raise AuthError("peer certificate is not a Mamori device certificate")
    maker, mod = model[0].split("/", 1)
    return {"id": dev[0], "maker": maker, "model": mod, "transport": "ip",
            "serial": cert.serial_number}


def gateway_id_of(der: bytes) -> str:
    """The gateway id in a gateway certificate (AuthError when it is not one)."""
    uris = cert_uris(x509.load_der_x509_certificate(der))
    ids = [u[len(GATEWAY_URI):] for u in uris if u.startswith(GATEWAY_URI)]
    if len(ids) != 1:
        raise AuthError("the peer is not a Mamori gateway")
    return ids[0]


class Revocation:
    """The site CRL from identity/crl.pem, verified against the site CA, reloaded on change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / IDENTITY / "crl.pem"
        self.ca = x509.load_pem_x509_certificate(
            (Path(state_dir) / IDENTITY / "site-ca.pem").read_bytes())
        self._mtime = -1.0
        self._serials: set[int] = set()

    def serials(self) -> set[int]:
        """Revoked serial numbers (IntegrityError if the CRL is not the site's)."""
        mtime = self.path.stat().st_mtime
        if mtime != self._mtime:
            crl = x509.load_pem_x509_crl(self.path.read_bytes())
            try:
                ok = crl.is_signature_valid(self.ca.public_key())  # type: ignore[arg-type]
            except (InvalidSignature, TypeError):
                ok = False
            if not ok or crl.issuer != self.ca.subject:
                raise IntegrityError("installed CRL is not signed by the site CA")
            self._serials = {r.serial_number for r in crl}
            self._mtime = mtime
        return self._serials

    def check(self, serial: int) -> None:
        """AuthError when the serial is revoked."""
        if serial in self.serials():
            raise AuthError("certificate serial %d is revoked" % serial)


def _version(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(c for c in part if c.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


class DeviceAuthorizer:
    """LanService authorizer: certificate -> identity; revocation, allowlist, hello consistency."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        ident = self.state_dir / IDENTITY
        meta = installed_identity(self.state_dir)
        self.level = int(meta["level"])
        self.revocation = Revocation(self.state_dir)
        doc = json.loads((ident / "allowlist.json").read_text())
        payload = verify_doc(self.revocation.ca, doc, "mamori-allowlist")
        if payload.get("site_id") != meta["site_id"]:
            raise IntegrityError("installed allowlist belongs to another site")
        self.allowlist: list[dict] = list(payload["entries"])

    def check_model(self, maker: str, model: str, transport: str, fw: str = "") -> dict:
        """The allowlist entry or PolicyError (not allowlisted, or firmware too old)."""
        for e in self.allowlist:
            if e["maker"] == maker and e["model"] == model and transport in e["transports"]:
                if fw and _version(fw) < _version(str(e.get("min_firmware", "0"))):
                    raise PolicyError("firmware %s of %s/%s is below the allowlist minimum %s"
                                      % (fw[:32], maker, model, e["min_firmware"]))
                return e
        raise PolicyError("model %s/%s over %s is not on the level-%d allowlist"
                          % (maker[:64], model[:64], transport, self.level))

    def authorize_sync(self, hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        """The identity of an authenticated peer, or AuthError/PolicyError with the reason."""
        if cert is None:
            raise AuthError("no client certificate")
        ident = peer_identity(cert)
        self.revocation.check(ident["serial"])
        if hello.get("id") != ident["id"]:
            raise AuthError("hello id %r does not match the certificate's device %r"
                            % (str(hello.get("id"))[:64], ident["id"]))
        for field in ("maker", "model"):
            if field in hello and hello[field] != ident[field]:
                raise AuthError("hello %s does not match the certificate" % field)
        self.check_model(ident["maker"], ident["model"], "ip", str(hello.get("fw") or ""))
        ident["serial"] = str(ident["serial"])
        ident["level"] = self.level
        return ident

    async def __call__(self, hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        """Async form used by LanService."""
        return self.authorize_sync(hello, cert)


def secure_lan(state_dir: Path, board: dict | None,
               bundle: Path | None) -> tuple[ssl.SSLContext, DeviceAuthorizer, str] | None:
    """Install the bundle if given; return (server context, authorizer, gateway id) or None.

    None means the state directory holds no installed identity (sim board without a bundle).
    """
    from firmware.gateway.install import install_bundle

    if bundle is not None:
        install_bundle(Path(state_dir), Path(bundle), board)
    elif not (Path(state_dir) / IDENTITY / "gateway.json").is_file():
        return None
    meta = installed_identity(state_dir)
    return server_context(state_dir, board), DeviceAuthorizer(state_dir), meta["gateway_id"]


def tls_failure_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "client certificate rejected: %s" % (exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed: %s" % (exc.reason or exc.__class__.__name__)
    if isinstance(exc, TimeoutError):
        return "TLS handshake timed out"
    return "TLS handshake failed: %s" % exc.__class__.__name__


def install_crl(state_dir: Path, pem: bytes) -> int:
    """Replace the installed CRL with a newer one signed by the site CA; return its size.

    Refuses a CRL from another CA and one older than the installed CRL (rollback).
    """
    ident = Path(state_dir) / IDENTITY
    ca = x509.load_pem_x509_certificate((ident / "site-ca.pem").read_bytes())
    try:
        new = x509.load_pem_x509_crl(pem)
    except ValueError:
        raise IntegrityError("not a PEM CRL")
    try:
        ok = new.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except TypeError:
        ok = False
    if not ok or new.issuer != ca.subject:
        raise IntegrityError("CRL is not signed by the site CA")
    old = x509.load_pem_x509_crl((ident / "crl.pem").read_bytes())
    if new.last_update_utc < old.last_update_utc:
        raise IntegrityError("CRL is older than the installed one (rollback refused)")
    from firmware.gateway.install import write_file

    write_file(ident / "crl.pem", pem, secret=False)
    return len(list(new))
