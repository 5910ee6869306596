"""Which devices may be admitted: site CRL, signed model allowlist, certificate identity (CPython).

Shared by every device channel (LAN mutual TLS, BLE Noise, Zigbee install codes). The CRL is
judged here per serial (``firmware.gateway.identity.crl``), never as a whole by OpenSSL: a stale
list keeps refusing what it lists and admits everyone else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.common.certs import peer_identity
from firmware.common.signeddoc import verify_doc
from firmware.core import allowlist, lanpolicy
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, IntegrityError
from firmware.core.threestar import actions_for
from firmware.gateway.identity.crl import Revocation, install_crl
from firmware.gateway.identity.install import IDENTITY, installed_identity

__all__ = ["DeviceAuthorizer", "Revocation", "install_crl"]


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
        return allowlist.check_model(self.allowlist, maker, model, transport, fw, self.level)

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
        entry = self.check_model(ident["maker"], ident["model"], "ip",
                                 str(hello.get("fw") or ""))
        ident["three_star"] = list(actions_for(entry))
        ident["tls_floor"] = lanpolicy.floor_for(entry)
        ident["serial"] = str(ident["serial"])
        ident["level"] = self.level
        return ident

    async def __call__(self, hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        """Async form used by LanService."""
        return self.authorize_sync(hello, cert)
