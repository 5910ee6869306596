"""One-time installation tickets on the gateway: a secret binds one device to this gateway.

The site signs a ticket (gateway id, device id, expiry, salted SHA-256 of the secret); the
installer types or scans the secret. ``redeem`` accepts it once, for the named device, on the
named gateway, before the expiry; used ticket ids are remembered in ``identity/tickets-used``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509

from firmware.common.signeddoc import verify_doc
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, IntegrityError
from firmware.gateway.identity.install import IDENTITY, installed_identity

TICKET_KIND = "mamori-install-ticket"


def secret_digest(secret: str, ticket_id: str) -> str:
    """Salted digest of a normalised secret (same as the site's)."""
    norm = secret.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256((ticket_id + ":" + norm).encode()).hexdigest()


class InstallTickets:
    """Verifies and redeems installation tickets for this gateway."""

    def __init__(self, state_dir: Path, now: Callable[[], float] = time.time) -> None:
        self.state_dir = Path(state_dir)
        self.meta = installed_identity(self.state_dir)
        self.ca = x509.load_pem_x509_certificate(
            (self.state_dir / IDENTITY / "site-ca.pem").read_bytes())
        self.used_path = self.state_dir / IDENTITY / "tickets-used"
        self.now = now

    def _used(self) -> set[str]:
        if not self.used_path.is_file():
            return set()
        return set(self.used_path.read_text().split())

    def redeem(self, ticket: Any, secret: str, device_id: str) -> dict:
        """Accept the secret once for the ticket's device; AuthError with the reason otherwise."""
        try:
            p = verify_doc(self.ca, ticket, TICKET_KIND)
        except IntegrityError as exc:
            raise rc.coded(AuthError("installation ticket refused: %s" % exc.message),
                           rc.TICKET_INVALID)
        if p.get("gateway_id") != self.meta["gateway_id"] or p.get("site_id") != self.meta[
                "site_id"]:
            raise rc.coded(AuthError("installation ticket is for another gateway"),
                           rc.TICKET_INVALID)
        if p.get("device_id") != device_id:
            raise rc.coded(AuthError("installation ticket is for another device"),
                           rc.TICKET_INVALID)
        expiry = datetime.datetime.fromisoformat(str(p["not_after"])).timestamp()
        if self.now() > expiry:
            raise rc.coded(AuthError("installation ticket expired",
                                     "issue a new installation secret"), rc.TICKET_EXPIRED)
        tid = str(p["ticket_id"])
        if tid in self._used():
            raise rc.coded(AuthError("installation ticket was already used"), rc.TICKET_USED)
        if not hmac.compare_digest(secret_digest(secret, tid), str(p["secret_sha256"])):
            raise rc.coded(AuthError("wrong installation secret"), rc.TICKET_INVALID)
        with open(self.used_path, "a", encoding="utf-8") as fh:
            fh.write(tid + "\n")
        return {"device_id": device_id, "ticket_id": tid, "not_after": p["not_after"]}
