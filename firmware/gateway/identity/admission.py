"""Which devices may be admitted: site CRL, signed model allowlist, certificate identity (CPython).

Shared by every device channel (LAN mutual TLS, BLE Noise, Zigbee install codes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from firmware.common.certs import peer_identity
from firmware.common.signeddoc import verify_doc
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, IntegrityError, PolicyError
from firmware.gateway.identity.install import IDENTITY, installed_identity, write_file


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
            raise rc.coded(AuthError("certificate serial %d is revoked" % serial),
                           rc.CREDENTIAL_REVOKED)


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
                    raise rc.coded(PolicyError(
                        "firmware %s of %s/%s is below the allowlist minimum %s"
                        % (fw[:32], maker, model, e["min_firmware"])), rc.FIRMWARE_TOO_OLD)
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
            raise rc.coded(AuthError("hello id %r does not match the certificate's device %r"
                                     % (str(hello.get("id"))[:64], ident["id"])),
                           rc.IDENTITY_MISMATCH)
        for field in ("maker", "model"):
            if field in hello and hello[field] != ident[field]:
                raise rc.coded(AuthError("hello %s does not match the certificate" % field),
                               rc.IDENTITY_MISMATCH)
        self.check_model(ident["maker"], ident["model"], "ip", str(hello.get("fw") or ""))
        ident["serial"] = str(ident["serial"])
        ident["level"] = self.level
        return ident

    async def __call__(self, hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        """Async form used by LanService."""
        return self.authorize_sync(hello, cert)


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
    write_file(ident / "crl.pem", pem, secret=False)
    return len(list(new))
