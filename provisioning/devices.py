"""Per-device credentials for each transport, refused for models not on the site's allowlist.

Credential file (JSON, 0600, ``format: mamori-device-credentials/1``), by transport:

- ``ip``: ``certificate`` + ``private_key`` (ECDSA P-256, client auth, SAN
  ``urn:mamori:device:<id>`` and ``urn:mamori:model:<maker>/<model>``) and ``ca_chain``.
- ``ble``: ``static_private`` (X25519, base64), ``record`` (site-signed: id, model, static
  public key, serial, expiry), ``gateway_static_public`` and ``gateway_id`` (Noise IK).
- ``zigbee``: ``install_code`` (hex, CRC-16 included), ``ieee`` and a site-signed ``record``.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.installcode import new_install_code
from firmware.core.errors import ConfigError
from provisioning import pki
from provisioning.files import write_json
from provisioning.site import TRANSPORTS, Site, check_id, not_after_iso

CRED_FORMAT = "mamori-device-credentials/1"
BLE_RECORD = "mamori-ble-device"
ZIGBEE_RECORD = "mamori-zigbee-device"


def _pick_gateway(site: Site, gateway: str | None) -> dict:
    gws = site.gateways()
    if gateway:
        rec = site.issued(gateway)
        if rec.get("kind") != "gateway":
            raise ConfigError("%r is not a gateway" % gateway)
        return rec
    live = [g for g in gws if not g.get("revoked")]
    if len(live) != 1:
        raise ConfigError("BLE credentials need the gateway they will talk to",
                          hint="pass --gateway ID (this site has %d gateways)" % len(live))
    return live[0]


def _ieee(value: str | None) -> str:
    if value:
        raw = bytes.fromhex(value.replace(":", ""))
        if len(raw) != 8:
            raise ConfigError("--ieee must be 8 bytes (EUI-64)")
    else:
        raw = bytes([0x02]) + secrets.token_bytes(7)  # locally administered
    return ":".join("%02x" % b for b in raw)


def issue_device(site: Site, transport: str, maker: str, model: str, dev_id: str, out: Path,
                 gateway: str | None = None, ieee: str | None = None, days: int = 825) -> dict:
    """Issue credentials for one device; returns the public summary (no secret)."""
    check_id(dev_id, "device id")
    if transport not in TRANSPORTS:
        raise ConfigError("transport must be one of ip, ble, zigbee")
    site.check_allowed(maker, model, transport)
    out = Path(out)
    if out.exists():
        raise ConfigError("already exists", str(out), hint="choose another --out")
    if site.issued_path(dev_id).exists():
        raise ConfigError("device id %r was already issued on this site" % dev_id,
                          hint="ids are unique; revoke the old one and use a new id")
    ca_key, ca_cert = site.ca_key(), site.ca_cert()
    chain = site.ca_pem() + site.root_pem()
    base: dict[str, Any] = {
        "format": CRED_FORMAT, "transport": transport, "device_id": dev_id, "maker": maker,
        "model": model, "site_id": site.site_id, "site_name": site.name}
    summary: dict = {"device_id": dev_id, "transport": transport, "maker": maker,
                     "model": model, "credentials": str(out)}
    public: dict = {"id": dev_id, "kind": "device", "transport": transport, "maker": maker,
                    "model": model, "issued": pki.now().isoformat()}
    if transport == "ip":
        key = pki.new_key()
        cert = pki.issue_leaf(
            ca_key, ca_cert, key.public_key(), dev_id, "Mamori site " + site.name, "device",
            [pki.DEVICE_URI + dev_id, pki.MODEL_URI + maker + "/" + model],
            server=False, client=True, days=days,
        )
        creds = dict(base, certificate=pki.cert_pem(cert), private_key=pki.key_pem(key).decode(),
                     ca_chain=chain)
        serial, not_after = cert.serial_number, cert.not_valid_after_utc.isoformat()
        public.update(certificate=pki.cert_pem(cert), fingerprint=pki.fingerprint(cert))
    elif transport == "ble":
        gw = _pick_gateway(site, gateway)
        static = x25519.X25519PrivateKey.generate()
        pub = static.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
        serial, not_after = x509.random_serial_number(), not_after_iso(days)
        record = pki.sign_doc(ca_key, BLE_RECORD, {
            "device_id": dev_id, "maker": maker, "model": model, "transport": "ble",
            "site_id": site.site_id, "static_public": base64.b64encode(pub).decode(),
            "serial": str(serial), "not_after": not_after, "gateway_id": gw["id"],
        })
        creds = dict(base, record=record, gateway_id=gw["id"],
                     gateway_static_public=gw["ble_static_public"],
                     static_private=base64.b64encode(static.private_bytes(
                         serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                         serialization.NoEncryption())).decode())
        public.update(static_public=base64.b64encode(pub).decode(), gateway_id=gw["id"])
        summary["gateway_id"] = gw["id"]
    else:
        code = new_install_code(16)
        addr = _ieee(ieee)
        serial, not_after = x509.random_serial_number(), not_after_iso(days)
        record = pki.sign_doc(ca_key, ZIGBEE_RECORD, {
            "device_id": dev_id, "maker": maker, "model": model, "transport": "zigbee",
            "site_id": site.site_id, "ieee": addr, "serial": str(serial),
            "not_after": not_after,
        })
        creds = dict(base, record=record, ieee=addr, install_code=code.hex())
        public.update(ieee=addr)
        summary["ieee"] = addr
    public.update(serials=[str(serial)], not_after=not_after)
    write_json(out, creds, secret=True, exclusive=True)
    site.save_issued(public)
    site.record("issue-device", dev_id, kind="device", transport=transport, maker=maker,
                model=model, serial=str(serial), not_after=not_after)
    summary.update(serial=str(serial), not_after=not_after)
    return summary
