"""One-time installation secrets: bind one new device to one gateway for a short window.

``issue_install_secret`` writes a site-signed ticket (gateway id, device id, expiry, a salted
SHA-256 of the secret) that the gateway verifies (``firmware.gateway.identity.tickets``), and
the secret itself once, for the installer: ``<out>.secret.txt`` (printable code plus a text
QR code) and ``<out>.secret.svg`` (QR code), both 0600. The secret never reaches stdout or JSON.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import secrets
from pathlib import Path

import qrcode
import qrcode.image.svg

from firmware.core.errors import ConfigError
from provisioning import pki
from provisioning.files import write_file, write_json
from provisioning.site import Site, check_id

TICKET_KIND = "mamori-install-ticket"
MAX_MINUTES = 60


def secret_digest(secret: str, ticket_id: str) -> str:
    """Salted digest of a normalised secret (what the ticket carries)."""
    norm = secret.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256((ticket_id + ":" + norm).encode()).hexdigest()


def _qr_text(data: str) -> str:
    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    buf = io.StringIO()
    qr.print_ascii(out=buf, invert=True)
    return buf.getvalue()


def _qr_svg(data: str) -> bytes:
    img = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage)
    buf = io.BytesIO()
    img.save(buf)
    return buf.getvalue()


def issue_install_secret(site: Site, gateway: str, device: str, out: Path,
                         minutes: int = 10) -> dict:
    """Issue a one-time secret and its signed ticket; return the public summary."""
    check_id(gateway, "gateway id")
    check_id(device, "device id")
    if not 1 <= minutes <= MAX_MINUTES:
        raise ConfigError("the window must be 1..%d minutes" % MAX_MINUTES)
    gw = site.issued(gateway)
    if gw.get("kind") != "gateway" or gw.get("revoked"):
        raise ConfigError("%r is not an active gateway of this site" % gateway)
    out = Path(out)
    secret_path = out.with_name(out.name + ".secret.txt")
    svg_path = out.with_name(out.name + ".secret.svg")
    for p in (out, secret_path, svg_path):
        if p.exists():
            raise ConfigError("already exists", str(p), hint="choose another --out")
    raw = base64.b32encode(secrets.token_bytes(10)).decode()  # 80 bits, 16 characters
    code = "-".join(raw[i:i + 4] for i in range(0, 16, 4))
    ticket_id = secrets.token_hex(8)
    not_after = (pki.now() + datetime.timedelta(minutes=minutes)).replace(microsecond=0)
    doc = pki.sign_doc(site.ca_key(), TICKET_KIND, {
        "ticket_id": ticket_id, "gateway_id": gateway, "device_id": device,
        "site_id": site.site_id, "not_after": not_after.isoformat(),
        "secret_sha256": secret_digest(code, ticket_id),
    })
    write_json(out, doc, secret=True, exclusive=True)
    qr_data = "MAMORI-INSTALL:%s:%s:%s" % (gateway, device, code)
    text = ("One-time installation secret\n gateway %s\n device  %s\n valid until %s\n\n"
            "   %s\n\n%s" % (gateway, device, not_after.isoformat(), code, _qr_text(qr_data)))
    write_file(secret_path, text.encode(), secret=True, exclusive=True)
    write_file(svg_path, _qr_svg(qr_data), secret=True, exclusive=True)
    site.record("install-secret", device, kind="install-ticket", gateway=gateway,
                ticket_id=ticket_id, not_after=not_after.isoformat())
    return {"ticket": str(out), "ticket_id": ticket_id, "gateway_id": gateway,
            "device_id": device, "not_after": not_after.isoformat(),
            "secret_file": str(secret_path), "qr_svg": str(svg_path)}
