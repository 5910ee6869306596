"""Per-device credentials for each transport, refused for models not on the site's allowlist.

Credential file (JSON, 0600, ``format: mamori-device-credentials/1``), by transport:

- ``ip``: ``certificate`` + ``private_key`` (ECDSA P-256, client auth, SAN
  ``urn:mamori:device:<id>`` and ``urn:mamori:model:<maker>/<model>``, no common name: a broker
  that maps the CN to its MQTT user refuses it) and ``ca_chain``; ``gateway_pin`` (site-signed:
  the one gateway it may talk to, ``firmware.common.gatewaypin``) and ``crl`` (the site's CRL
  when it was issued). An IP device is issued for one gateway, so that gateway must be issued
  first (``--gateway GW``, or the site's only gateway). ``gateway_tls: "TLSv1.2"`` when that
  gateway runs on a MicroPython board (its Mbed TLS offers TLS 1.2 only). Beside the file: the
  DER forms and compact descriptor a MicroPython device loads (``provisioning.mpyforms``).
- ``ble``: ``static_private`` (X25519, base64), ``record`` (site-signed: id, model, static
  public key, serial, expiry), ``gateway_static_public`` and ``gateway_id`` (Noise IK).
- ``zigbee``: ``install_code`` (hex, CRC-16 included), ``ieee`` and a site-signed ``record``.

IP and BLE credentials also carry ``platform_command_key`` (the site's raw Ed25519 command key,
base64) and ``three_star`` (the model's extra ★★★ actions from its allowlist entry): the device
itself checks the platform's signature on those actions (``firmware.device.portable.threestar``).
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.boards import load_board
from firmware.common.gatewaypin import PIN_KIND, pin_payload
from firmware.common.installcode import new_install_code
from firmware.core import lanpolicy, strictjson
from firmware.core.errors import ConfigError, MamoriError, StateError
from firmware.core.threestar import ENTRY_KEY
from provisioning import mpyforms, pki
from provisioning.files import write_json
from provisioning.site import TRANSPORTS, Site, check_id, not_after_iso

CRED_FORMAT = "mamori-device-credentials/1"
BLE_RECORD = "mamori-ble-device"
ZIGBEE_RECORD = "mamori-zigbee-device"


def _pick_gateway(site: Site, gateway: str | None, what: str = "BLE") -> dict:
    if gateway:
        rec = site.issued(gateway)
        if rec.get("kind") != "gateway":
            raise ConfigError("%r is not a gateway" % gateway)
        if rec.get("revoked"):
            raise StateError("gateway %r is revoked: devices cannot be pinned to it" % gateway,
                             "issue a new gateway and pin the device to that one")
        return rec
    live = [g for g in site.gateways() if not g.get("revoked")]
    if not live:
        # Decision: no credential without its gateway. A device issued before its gateway
        # would trust any gateway of the site (or none); issue the gateway first.
        raise ConfigError("%s credentials name the one gateway they belong to, and this site "
                          "has no gateway yet" % what,
                          hint="issue the gateway first (`mamori provision gateway DIR --board "
                               "B --id GW --out FILE`), then the device with --gateway GW")
    if len(live) != 1:
        raise ConfigError("%s credentials need the gateway they will talk to" % what,
                          hint="pass --gateway ID (this site has %d gateways)" % len(live))
    return live[0]


def _platform_key(site: Site) -> str:
    """The site's command-signing public key, raw 32 bytes in base64 (what devices verify)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(
        (site.root / "platform/command-signing.pub").read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("the site's command key is not Ed25519", "platform/command-signing.pub")
    return base64.b64encode(key.public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)).decode()


def gateway_pin_doc(site: Site, dev_id: str, gw: dict) -> dict:
    """The site-signed pin of `dev_id` on gateway record `gw` (its current certificate)."""
    cert = pki.load_cert(gw["certificate"])
    return pki.sign_doc(site.ca_key(), PIN_KIND, dict(
        pin_payload(site.site_id, dev_id, gw["id"], cert), issued=pki.now().isoformat()))


def gateway_tls(gw: dict) -> str:
    """The TLS version a device must accept from gateway record `gw`: TLS 1.2 from a gateway
    on a MicroPython board (Mbed TLS there offers no TLS 1.3), else TLS 1.3."""
    try:
        runtime = load_board(str(gw.get("board"))).runtime
    except MamoriError:
        runtime = None  # a board this PC has no profile for: the default
    return lanpolicy.TLS12 if runtime == "micropython" else lanpolicy.TLS13


def _tls_fields(gw: dict) -> dict:
    floor = gateway_tls(gw)
    return {"gateway_tls": floor} if floor != lanpolicy.TLS13 else {}


def pin_device(site: Site, creds_path: Path, gateway: str | None = None) -> dict:
    """Pin existing IP credentials (issued before pinning) to one gateway of this site.

    Adds ``gateway_pin``, the current ``crl``, the platform key and the ★★★ list in place
    (atomic, still 0600); no new certificate, the device keeps its identity.
    """
    creds_path = Path(creds_path)
    try:
        creds = strictjson.loads_object(creds_path.read_bytes(), str(creds_path))
    except OSError as exc:
        raise ConfigError("cannot read the credentials (%s)" % type(exc).__name__,
                          str(creds_path))
    if creds.get("format") != CRED_FORMAT:
        raise ConfigError("is not a Mamori device credential file", str(creds_path))
    if creds.get("transport") != "ip":
        raise ConfigError("only IP credentials are pinned this way (BLE credentials carry "
                          "their gateway's static key)", str(creds_path))
    if creds.get("site_id") != site.site_id:
        raise ConfigError("the credentials belong to another site", str(creds_path))
    dev_id = str(creds.get("device_id"))
    record = site.issued(dev_id)
    if record.get("revoked"):
        raise StateError("device %r is revoked" % dev_id)
    if record.get("certificate") and record["certificate"] != creds.get("certificate"):
        raise ConfigError("the certificate is not the one this site issued to %r" % dev_id,
                          str(creds_path))
    gw = _pick_gateway(site, gateway, "IP")
    entry = site.check_allowed(str(creds.get("maker")), str(creds.get("model")), "ip")
    creds.update(gateway_pin=gateway_pin_doc(site, dev_id, gw), crl=site.crl_pem(),
                 platform_command_key=_platform_key(site),
                 three_star=list(entry.get(ENTRY_KEY) or []))
    creds.pop("gateway_tls", None)
    creds.update(_tls_fields(gw))
    write_json(creds_path, creds, secret=True)
    if mpyforms.paths(creds_path)["descriptor"].exists():
        mpyforms.write_descriptor(creds_path, creds)
    site.record("pin-device", dev_id, kind="device", gateway=gw["id"])
    return {"device_id": dev_id, "gateway_id": gw["id"], "credentials": str(creds_path)}


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
    entry = site.check_allowed(maker, model, transport)
    out = Path(out)
    if out.exists():
        raise ConfigError("already exists", str(out), hint="choose another --out")
    if site.issued_path(dev_id).exists():
        raise ConfigError("device id %r was already issued on this site" % dev_id,
                          hint="ids are unique; revoke the old one and use a new id")
    if transport == "ip":
        for p in mpyforms.paths(out).values():
            if p.exists():
                raise ConfigError("already exists", str(p), hint="choose another --out")
    ca_key, ca_cert = site.ca_key(), site.ca_cert()
    chain = site.ca_pem() + site.root_pem()
    base: dict[str, Any] = {
        "format": CRED_FORMAT, "transport": transport, "device_id": dev_id, "maker": maker,
        "model": model, "site_id": site.site_id, "site_name": site.name}
    summary: dict = {"device_id": dev_id, "transport": transport, "maker": maker,
                     "model": model, "credentials": str(out)}
    public: dict = {"id": dev_id, "kind": "device", "transport": transport, "maker": maker,
                    "model": model, "issued": pki.now().isoformat()}
    if transport in ("ip", "ble"):
        base.update(platform_command_key=_platform_key(site),
                    three_star=list(entry.get(ENTRY_KEY) or []))
    if transport == "ip":
        gw = _pick_gateway(site, gateway, "IP")
        key = pki.new_key()
        cert = pki.issue_leaf(
            ca_key, ca_cert, key.public_key(), None, "Mamori site " + site.name, "device",
            [pki.DEVICE_URI + dev_id, pki.MODEL_URI + maker + "/" + model],
            server=False, client=True, days=days,
        )
        creds = dict(base, certificate=pki.cert_pem(cert), private_key=pki.key_pem(key).decode(),
                     ca_chain=chain, gateway_pin=gateway_pin_doc(site, dev_id, gw),
                     crl=site.crl_pem(), **_tls_fields(gw))
        micropython: dict[str, Any] = {"der": mpyforms.write_der(out, cert, key, ca_cert)}
        summary["gateway_id"] = gw["id"]
        public["gateway_id"] = gw["id"]
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
    if transport == "ip":
        micropython["descriptor"] = mpyforms.write_descriptor(out, creds)
        summary["micropython"] = micropython
    site.save_issued(public)
    site.record("issue-device", dev_id, kind="device", transport=transport, maker=maker,
                model=model, serial=str(serial), not_after=not_after)
    summary.update(serial=str(serial), not_after=not_after)
    return summary
