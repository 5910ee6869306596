"""TLS for the admin interface: the policy's server context with the gateway's own certificate,
or (not installed yet, e.g. the sim board) a self-signed one whose key is protected by the key
store.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from firmware.common import tlspolicy
from firmware.common.boardprofile import Board
from firmware.gateway.identity import install
from firmware.gateway.identity.keystore import KeyStore

SELF_CERT = "admin/tls/selfsigned.pem"
SELF_KEY = "admin/tls/selfsigned-key.pem"
SELF_PASS = "admin-tls-passphrase"  # noqa: S105 - a key-store entry name


@tlspolicy.register_context("admin-https", "server")
def admin_server_context() -> ssl.SSLContext:
    """The admin HTTPS server context (browsers present no client certificate)."""
    return tlspolicy.server_context(require_client_cert=False)


def _self_signed(state_dir: Path, board: Board | None) -> tuple[Path, Path, bytes]:
    cert_path, key_path = state_dir / SELF_CERT, state_dir / SELF_KEY
    ks = KeyStore(state_dir, board)
    if cert_path.is_file() and key_path.is_file() and ks.has(SELF_PASS):
        return cert_path, key_path, ks.get(SELF_PASS)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mamori-gateway-admin")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    passphrase = secrets.token_urlsafe(32).encode()
    ks.put(SELF_PASS, passphrase, "passphrase of the admin interface's self-signed TLS key",
           "ECDSA P-256 / PBES2", 256, "generated on the gateway (not installed)", 825,
           replace=True)
    install.write_file(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase)), secret=True)
    install.write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), secret=False)
    return cert_path, key_path, passphrase


def _installed(state_dir: Path) -> Path | None:
    ident = state_dir / install.IDENTITY
    if (ident / "gateway.pem").is_file() and (ident / "gateway-key.pem").is_file():
        return ident
    return None


def certificate_names(state_dir: Path) -> list[str]:
    """DNS names and IP addresses the admin certificate is for (after ``server_context``)."""
    ident = _installed(Path(state_dir))
    path = ident / "gateway.pem" if ident else Path(state_dir) / SELF_CERT
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([str(n) for n in san.get_values_for_type(x509.DNSName)]
            + [str(a) for a in san.get_values_for_type(x509.IPAddress)])


def server_context(state_dir: Path, board: Board | None = None) -> tuple[ssl.SSLContext, str]:
    """(context, which certificate): the installed gateway certificate when there is one."""
    state_dir = Path(state_dir)
    ctx = admin_server_context()
    ident = _installed(state_dir)
    if ident is not None:
        ctx.load_cert_chain(ident / "gateway.pem", ident / "gateway-key.pem",
                            password=install.tls_key_passphrase(state_dir, board))
        return ctx, "gateway certificate"
    cert, key, passphrase = _self_signed(state_dir, board)
    ctx.load_cert_chain(cert, key, password=passphrase)
    return ctx, "self-signed (not installed)"
