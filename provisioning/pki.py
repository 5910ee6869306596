"""X.509 building blocks for the site PKI: CAs, leaf certificates, CRLs, signed JSON documents."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.common.certs import DEVICE_URI, GATEWAY_URI, MODEL_URI, SITE_URI
from firmware.common.signeddoc import SIGNED_ALG, canonical, sign_doc, verify_doc
from firmware.core.errors import IntegrityError

PrivateKey = ec.EllipticCurvePrivateKey
__all__ = ["DEVICE_URI", "GATEWAY_URI", "MODEL_URI", "SIGNED_ALG", "SITE_URI", "canonical",
           "sign_doc", "verify_doc"]


def now() -> datetime.datetime:
    """The current UTC time (timezone-aware)."""
    return datetime.datetime.now(datetime.UTC)


def new_key() -> PrivateKey:
    """A fresh ECDSA P-256 private key (128-bit strength)."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str | None, org: str, unit: str = "") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def make_ca(
    cn: str, org: str, key: PrivateKey, issuer_key: PrivateKey | None = None,
    issuer_cert: x509.Certificate | None = None, days: int = 3650, path_length: int | None = 0,
) -> x509.Certificate:
    """A CA certificate: self-signed root when no issuer is given, else an issuing CA."""
    subject = _name(cn, org, "ca")
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    sign_key = issuer_key if issuer_key is not None else key
    t = now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(t - datetime.timedelta(minutes=5))
        .not_valid_after(t + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                issuer_cert.public_key()  # type: ignore[arg-type]
            ),
            False,
        )
    return builder.sign(sign_key, hashes.SHA256())


def issue_leaf(
    ca_key: PrivateKey, ca_cert: x509.Certificate, public_key: Any, cn: str | None, org: str,
    unit: str, uris: list[str], server: bool, client: bool, days: int = 365,
    dns: list[str] | None = None, ips: list[str] | None = None,
    not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None,
) -> x509.Certificate:
    """An end-entity certificate for TLS (server and/or client) signed by the issuing CA.

    `cn` None leaves the common name out: brokers that take the MQTT user name from the CN
    (Mosquitto's ``use_identity_as_username``) then refuse the certificate outright.
    """
    t = now()
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(u) for u in uris]
    sans += [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, org, unit))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or t - datetime.timedelta(minutes=5))
        .not_valid_after(not_after or t + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_cert.public_key()  # type: ignore[arg-type]
            ),
            False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def make_crl(
    ca_key: PrivateKey, ca_cert: x509.Certificate, revoked: list[tuple[int, str]],
    days: float = 365, number: int = 1,
) -> x509.CertificateRevocationList:
    """A CRL listing (serial, ISO revocation time) pairs, valid for `days`, with its number."""
    t = now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(t - datetime.timedelta(minutes=5))
        .next_update(t + datetime.timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
    )
    for serial, when in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(datetime.datetime.fromisoformat(when))
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(ca_key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key: Any, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of a private key, encrypted when a password is given."""
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption()
    )
    return bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   enc))


def public_pem(key: Any) -> str:
    """SubjectPublicKeyInfo PEM of a public key."""
    return str(key.public_bytes(serialization.Encoding.PEM,
                                serialization.PublicFormat.SubjectPublicKeyInfo).decode())


def load_cert(pem: str | bytes) -> x509.Certificate:
    """Parse a PEM certificate (IntegrityError when it is not one)."""
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except ValueError:
        raise IntegrityError("not a PEM certificate")


def load_ec_key(pem: bytes, password: bytes | None = None) -> PrivateKey:
    """Parse a PEM ECDSA private key."""
    key = serialization.load_pem_private_key(pem, password)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IntegrityError("expected an ECDSA private key")
    return key


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate (hex)."""
    return cert.fingerprint(hashes.SHA256()).hex()


def verify_chain(leaf: x509.Certificate, issuer: x509.Certificate) -> None:
    """Check leaf was signed by issuer and is within its validity period."""
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        raise IntegrityError("certificate %s was not issued by %s"
                             % (leaf.subject.rfc4514_string(), issuer.subject.rfc4514_string()))
    t = now()
    if not leaf.not_valid_before_utc <= t <= leaf.not_valid_after_utc:
        raise IntegrityError("certificate %s is outside its validity period"
                             % leaf.subject.rfc4514_string())


def ed25519_new() -> ed25519.Ed25519PrivateKey:
    """A fresh Ed25519 signing key."""
    return ed25519.Ed25519PrivateKey.generate()


def digest(data: bytes) -> str:
    """SHA-256 hex of bytes."""
    return hashlib.sha256(data).hexdigest()
