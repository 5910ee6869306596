"""Throw-away PKI for the WAN tests and benchmark: CAs, certificates, CRLs, Ed25519 keys."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Ca:
    """A CA key and certificate, and where its PEM lives."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    path: Path


@dataclass
class Leaf:
    """A leaf certificate and key on disk."""

    cert: x509.Certificate
    cert_path: Path
    key_path: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(d: Path, name: str) -> Ca:
    """A self-signed P-256 CA written to d/<name>.crt."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(minutes=5))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    path = d / (name + ".crt")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Ca(key, cert, path)


def make_leaf(d: Path, ca: Ca, cn: str, server_names: tuple[str, ...] = (),
              client: bool = True) -> Leaf:
    """A P-256 leaf (client and/or server) signed by ca, written to d/<cn>.crt/.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.cert.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - datetime.timedelta(minutes=5))
         .not_valid_after(NOW + datetime.timedelta(days=10))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    if server_names:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    cert = b.sign(ca.key, hashes.SHA256())
    cert_path = d / (cn + ".crt")
    key_path = d / (cn + ".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Leaf(cert, cert_path, key_path)


def make_crl(d: Path, ca: Ca, revoked: list[x509.Certificate], name: str = "crl.pem") -> Path:
    """A CRL signed by ca revoking the given certificates."""
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
         .last_update(NOW - datetime.timedelta(minutes=5))
         .next_update(NOW + datetime.timedelta(days=7)))
    for c in revoked:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(c.serial_number)
            .revocation_date(NOW - datetime.timedelta(minutes=1)).build())
    crl = b.sign(ca.key, hashes.SHA256())
    path = d / name
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def make_signing_key(d: Path) -> tuple[ed25519.Ed25519PrivateKey, Path, bytes]:
    """The site's Ed25519 command key: (key, PKCS#8 PEM path, raw public bytes)."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = d / "command-signing.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return key, path, pub


@dataclass
class World:
    """Everything one WAN test needs: a site CA, broker, gateway and platform identities."""

    root: Path
    ca: Ca
    broker: Leaf
    gateway: Leaf
    platform: Leaf
    sign_key: ed25519.Ed25519PrivateKey
    sign_key_path: Path
    verify_key: bytes


def make_world(d: Path, gateway_id: str = "gw-1") -> World:
    """Site CA; broker cert for 'localhost' only; gateway and platform client certs."""
    d.mkdir(parents=True, exist_ok=True)
    ca = make_ca(d, "site-ca")
    broker = make_leaf(d, ca, "broker", ("localhost",), client=False)
    gateway = make_leaf(d, ca, gateway_id)
    platform = make_leaf(d, ca, "mamori-platform-client")
    key, key_path, pub = make_signing_key(d)
    return World(d, ca, broker, gateway, platform, key, key_path, pub)
