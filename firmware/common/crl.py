"""The site's revocation list: parse, verify against the site CA, read its number and dates.

Shared by the gateway (installing and checking CRLs), the device agent (the CRL its credentials
were issued with) and the operator tools (issuing and pushing them). A Mamori CRL is an X.509 v2
CRL signed by the site's issuing CA, with a CRL number (RFC 5280 §5.2.3) that only ever grows:
a gateway refuses one whose number is not higher than the installed one.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from firmware.core.errors import IntegrityError

MAX_CRL = 1 << 20


@dataclass(frozen=True)
class CrlInfo:
    """What a verified CRL says."""

    number: int
    this_update: datetime.datetime
    next_update: datetime.datetime
    serials: frozenset[int] = field(default_factory=frozenset)
    issuer: str = ""
    der: bytes = b""

    def summary(self) -> dict[str, object]:
        """Number and dates (ISO 8601, UTC) for status views and answers."""
        return {"number": self.number, "this_update": self.this_update.isoformat(),
                "next_update": self.next_update.isoformat(), "revoked": len(self.serials)}


def load(pem: bytes | str) -> x509.CertificateRevocationList:
    """Parse a PEM CRL (IntegrityError when it is not one)."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    if len(data) > MAX_CRL:
        raise IntegrityError("CRL is larger than %d bytes" % MAX_CRL)
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError:
        raise IntegrityError("not a PEM certificate revocation list")


def number_of(crl: x509.CertificateRevocationList) -> int:
    """The CRL number (0 when the CRL has none: made before CRLs were numbered)."""
    try:
        ext = crl.extensions.get_extension_for_class(x509.CRLNumber)
    except x509.ExtensionNotFound:
        return 0
    return int(ext.value.crl_number)


def site_of(name: x509.Name) -> str:
    """The site id in a Mamori site CA name ('Mamori site CA site-…'), else the whole name."""
    cns = name.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    return cn.rsplit(" ", 1)[-1] if cn.startswith("Mamori site CA ") else name.rfc4514_string()


def verify(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> CrlInfo:
    """Check the CRL is the site CA's (issuer, then signature); IntegrityError with the reason."""
    if crl.issuer != ca.subject:
        raise IntegrityError("CRL is for site %s, not this site (%s)"
                             % (site_of(crl.issuer)[:80], site_of(ca.subject)[:80]),
                             "push the CRL of the site this device belongs to")
    try:
        ok = crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (InvalidSignature, TypeError):
        ok = False
    if not ok:
        raise IntegrityError("CRL is not signed by the site CA", "it was forged or altered")
    nxt = crl.next_update_utc
    if nxt is None:
        raise IntegrityError("CRL has no next-update time")
    return CrlInfo(number_of(crl), crl.last_update_utc, nxt,
                   frozenset(r.serial_number for r in crl), crl.issuer.rfc4514_string(),
                   crl.public_bytes(serialization.Encoding.DER))


def verified(pem: bytes | str, ca: x509.Certificate) -> CrlInfo:
    """Parse and verify in one step."""
    return verify(load(pem), ca)
