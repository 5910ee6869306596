"""Test helpers: a site, an installed gateway state dir, device credentials (keys made now)."""

from __future__ import annotations

import base64
import datetime
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from firmware.gateway.identity.install import install_bundle
from provisioning import pki
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site


class Kit:
    """One site with an installed gateway and helpers to make devices, good and bad."""

    def __init__(self, root: Path, name: str = "Home", level: int = 2) -> None:
        self.root = root
        self.site = Site.init(root / "site", level, name)
        self.site.allow("Acme", "Lock1", "ip")
        self.site.allow("Acme", "Lock1", "ble")
        self.site.allow("Acme", "Zb1", "zigbee")
        self.bundle = root / "gw1.bundle"
        self.gw = issue_gateway(self.site, "sim", "gw1", self.bundle)
        self.state = root / "state"
        self.installed = install_bundle(self.state, self.bundle)

    def device(self, dev_id: str, transport: str = "ip", **kw: Any) -> Path:
        """Issue device credentials; returns the credential file."""
        out = self.root / (dev_id + ".json")
        kw.setdefault("gateway", "gw1")  # devices are pinned to their gateway
        issue_device(self.site, transport, kw.pop("maker", "Acme"),
                     kw.pop("model", "Lock1" if transport != "zigbee" else "Zb1"), dev_id, out,
                     **kw)
        return out

    def signed(self, device: str, action: str, gateway: str = "gw1", **kw: Any) -> dict:
        """A platform command envelope signed with this site's command key."""
        from host_tools.platform.signing import new_envelope, sign
        from host_tools.platform.site import load_site

        key = load_site(self.site.root, need_signing_key=True).signing_key()
        return sign(new_envelope(gateway, device, action, **kw), key)

    def forged_ip_creds(self, dev_id: str, maker: str = "Acme", model: str = "Lock1",
                        not_after: datetime.datetime | None = None) -> dict:
        """IP credentials signed by the site CA directly (bypassing provisioning checks)."""
        key = pki.new_key()
        t = pki.now()
        cert = pki.issue_leaf(
            self.site.ca_key(), self.site.ca_cert(), key.public_key(), dev_id, "x", "device",
            [pki.DEVICE_URI + dev_id, pki.MODEL_URI + maker + "/" + model], False, True,
            not_before=(t - datetime.timedelta(days=30)) if not_after else None,
            not_after=not_after)
        return {"format": "mamori-device-credentials/1", "transport": "ip", "device_id": dev_id,
                "maker": maker, "model": model, "certificate": pki.cert_pem(cert),
                "private_key": pki.key_pem(key).decode(),
                "ca_chain": self.site.ca_pem() + self.site.root_pem()}


def load(path: Path) -> dict:
    """Read a credential file."""
    return dict(json.loads(Path(path).read_text()))


def mismatched_key(creds: dict) -> dict:
    """Same certificate, but a private key that is not the certificate's.

    The SEC1 structure carries the certificate's public point (so local consistency checks
    pass) with another private scalar: the CertificateVerify signature cannot verify.
    """
    real = serialization.load_pem_private_key(creds["private_key"].encode(), None)
    other = pki.new_key()
    pa = real.public_key().public_bytes(serialization.Encoding.X962,  # type: ignore[union-attr]
                                        serialization.PublicFormat.UncompressedPoint)
    pb = other.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint)
    der = other.private_bytes(serialization.Encoding.DER,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption())
    assert der.count(pb) == 1
    label = b"EC " + b"PRIVATE KEY-----"  # from parts: no literal key header in the source
    pem = (b"-----BEGIN " + label + b"\n" + base64.encodebytes(der.replace(pb, pa))
           + b"-----END " + label + b"\n")
    return dict(creds, private_key=pem.decode())


def secrets_of(*files: Path) -> list[bytes]:
    """Every secret string found in credential/bundle files (to scan other files for)."""
    found: list[bytes] = []
    for f in files:
        text = Path(f).read_text()
        if f.name.endswith(".admin-credential"):
            found.append(text.strip().splitlines()[-1].encode())
            continue
        doc = json.loads(text)
        payload = doc.get("payload", doc)
        sec = payload.get("secrets", {}) if isinstance(payload, dict) else {}
        for v in list(sec.values()) + [doc.get("private_key"), doc.get("static_private"),
                                       doc.get("install_code")]:
            if isinstance(v, str) and v:
                found.append(v.encode())
                if "PRIVATE KEY" in v:  # also the base64 body lines
                    found += [ln.encode() for ln in v.splitlines() if len(ln) > 40]
    return found
