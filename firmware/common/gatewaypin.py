"""A device's pin on its one gateway: a site-signed document, and the check of a TLS peer.

Every IP device credential carries ``gateway_pin``, a document signed by the site CA (kind
``mamori-gateway-pin``) naming the device, its gateway's id, the SHA-256 of the gateway
certificate's SubjectPublicKeyInfo (stable across a renewal with the same key) and of the whole
certificate (for ports that cannot parse X.509), plus the site's CRL as it was when the
credential was issued. The device agent refuses a TLS peer that is not exactly that gateway: any
other gateway of the site, the platform's own server, or the pinned gateway's certificate once
it is on that CRL. The pin is signed so it can be added to credentials issued earlier
(``mamori provision pin``) without re-issuing the device.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from firmware.common import crl as crlmod
from firmware.common.certs import gateway_id_of, spki_sha256
from firmware.common.signeddoc import verify_doc
from firmware.core.errors import AuthError, ConfigError, IntegrityError

PIN_KIND = "mamori-gateway-pin"
PIN_FIELDS = ("site_id", "device_id", "gateway_id", "spki_sha256", "certificate_sha256")


def pin_payload(site_id: str, device_id: str, gateway_id: str,
                gateway_cert: x509.Certificate) -> dict[str, Any]:
    """The payload the site CA signs to pin `device_id` to the gateway with this certificate."""
    from cryptography.hazmat.primitives import serialization

    der = gateway_cert.public_bytes(serialization.Encoding.DER)
    return {"site_id": site_id, "device_id": device_id, "gateway_id": gateway_id,
            "spki_sha256": spki_sha256(gateway_cert),
            "certificate_sha256": hashlib.sha256(der).hexdigest()}


@dataclass(frozen=True)
class GatewayPin:
    """The gateway a device belongs to, and the gateway serials its issue-time CRL revokes."""

    gateway_id: str
    spki_sha256: str
    certificate_sha256: str = ""
    revoked: frozenset[int] = field(default_factory=frozenset)

    def check(self, der: bytes | None) -> str:
        """The peer's gateway id when it is the pinned gateway; AuthError saying why not."""
        if der is None:
            raise AuthError("the TLS peer showed no certificate")
        try:
            peer_id = gateway_id_of(der)
        except AuthError:
            raise AuthError("the TLS peer is not a Mamori gateway (no gateway URI in its "
                            "certificate)", "check the gateway address")
        if peer_id != self.gateway_id:
            raise AuthError("the TLS peer is gateway %r, but this device belongs to gateway %r"
                            % (peer_id[:64], self.gateway_id),
                            "connect to your own gateway; another gateway of the site is not "
                            "trusted by this device")
        cert = x509.load_der_x509_certificate(der)
        if spki_sha256(cert) != self.spki_sha256:
            raise AuthError("the TLS peer claims to be gateway %r but holds another key than the "
                            "one this device is pinned to" % self.gateway_id,
                            "re-pin the device (`mamori provision pin`) if the gateway's key "
                            "was replaced")
        if cert.serial_number in self.revoked:
            raise AuthError("gateway %r presents a certificate that is revoked"
                            % self.gateway_id)
        return peer_id


def load_pin(creds: dict[str, Any], ca: x509.Certificate) -> GatewayPin:
    """The verified pin of IP credentials (ConfigError when absent, IntegrityError if forged)."""
    doc = creds.get("gateway_pin")
    if not doc:
        raise ConfigError("the credentials do not name their gateway (issued before devices "
                          "were pinned to one gateway)", field="gateway_pin",
                          hint="pin them: `mamori provision pin SITE --credentials FILE "
                               "--gateway GW`")
    payload = verify_doc(ca, doc, PIN_KIND)
    for key in PIN_FIELDS:
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise IntegrityError("gateway pin lacks %s" % key)
    if payload["device_id"] != creds.get("device_id"):
        raise IntegrityError("the gateway pin is for device %r, not %r"
                             % (payload["device_id"][:64], str(creds.get("device_id"))[:64]))
    revoked: frozenset[int] = frozenset()
    if creds.get("crl"):
        revoked = crlmod.verified(str(creds["crl"]), ca).serials
    return GatewayPin(payload["gateway_id"], payload["spki_sha256"],
                      payload["certificate_sha256"], revoked)
