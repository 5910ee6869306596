"""Load a device's credential file (from `mamori provision device`): TLS context, gateway pin,
and the ★★★ guard that checks the platform's signature on the device itself."""

from __future__ import annotations

import ssl
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from firmware.common.certs import lan_floor, load_key_pair
from firmware.common.gatewaypin import GatewayPin, load_pin
from firmware.common.sigverify import ed25519_verifier, raw_key_b64
from firmware.core import lanpolicy, schema, strictjson
from firmware.core.errors import ConfigError, IntegrityError, ProtocolError
from firmware.core.ids import ID_FIELD
from firmware.device.portable.threestar import ThreeStarGuard

CRED_FORMAT = "mamori-device-credentials/1"
REQUIRED = {"ip": ("certificate", "private_key", "ca_chain"),
            "ble": ("static_private", "record", "gateway_static_public"),
            "zigbee": ("install_code", "ieee", "record")}
MAX_FILE = 256 * 1024
MAX_DEPTH = 6
_PEM = schema.Str(64 * 1024)
_RECORD = schema.Map(schema.Str(32), schema.Any_(), 8)  # site-signed, verified where used
_COMMON = {"format": schema.Const(CRED_FORMAT), "transport": schema.Str(choices=tuple(REQUIRED)),
           "device_id": ID_FIELD, "maker": schema.Opt(schema.Str(64)),
           "model": schema.Opt(schema.Str(64)),
           "site_id": schema.Opt(schema.Token(1, 64)), "site_name": schema.Opt(schema.Str(128))}
# The platform's command key and the model's ★★★ actions (IP and BLE devices check them).
_PLATFORM = {"platform_command_key": schema.Opt(schema.Str(64)),
             "three_star": schema.Opt(schema.List(schema.Token(1, 64), 64))}
SCHEMAS = {
    "ip": schema.Obj(dict(_COMMON, **_PLATFORM, certificate=_PEM, private_key=_PEM,
                          ca_chain=_PEM, crl=schema.Opt(_PEM),
                          gateway_pin=schema.Opt(schema.Map(schema.Str(32), schema.Any_(), 8)),
                          # TLSv1.2: the pinned gateway runs on a MicroPython board (no TLS 1.3)
                          gateway_tls=schema.Opt(schema.Str(choices=(lanpolicy.TLS12,
                                                                     lanpolicy.TLS13))))),
    "ble": schema.Obj(dict(_COMMON, **_PLATFORM, record=_RECORD, gateway_id=ID_FIELD,
                           gateway_static_public=schema.Str(64),
                           static_private=schema.Str(64))),
    "zigbee": schema.Obj(dict(_COMMON, record=_RECORD, ieee=schema.Str(32),
                              install_code=schema.Str(64, 1, "0123456789abcdefABCDEF"))),
}


def load(path: Path) -> dict[str, Any]:
    """Read and check a credential file; errors name the file and the field."""
    source = str(path)
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise ConfigError("credential file not found", source)
    except OSError as exc:
        raise ConfigError("credential file is unreadable (%s)" % (exc.strerror or exc), source)
    try:
        doc = strictjson.loads_object(raw, "credential file", MAX_DEPTH, MAX_FILE)
    except ProtocolError as exc:
        if b'"mamori-install-bundle"' in raw[:4096]:
            raise ConfigError("is a gateway's installation bundle, not a device credential file",
                              source, hint="give the device's file from `mamori provision "
                                           "device … --out FILE`")
        raise ConfigError(exc.message, source)
    if doc.get("kind") == "mamori-install-bundle":
        raise ConfigError("is a gateway's installation bundle, not a device credential file",
                          source, hint="give the device's file from `mamori provision device`")
    if doc.get("format") != CRED_FORMAT:
        raise ConfigError("is not a Mamori device credential file (format %s expected)"
                          % CRED_FORMAT, source)
    transport = doc.get("transport")
    if transport not in REQUIRED:
        raise ConfigError("unknown transport %r" % str(transport)[:20], source, "transport")
    try:
        schema.check(doc, SCHEMAS[transport], "")
    except schema.FieldError as exc:
        raise ConfigError(exc.detail, source, exc.field, exc.hint)
    return doc


def tls_context(creds: dict[str, Any]) -> ssl.SSLContext:
    """Client context for an IP device: its certificate + key, the site CA as the only trust."""
    if creds.get("transport") != "ip":
        raise ConfigError("only IP devices use TLS (this one is %s)" % creds.get("transport"))
    ctx = lan_floor(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if creds.get("gateway_tls") == lanpolicy.TLS12:
        # A small-site gateway on MicroPython: TLS 1.2, still ECDHE + AEAD only (lan_floor).
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False  # LAN addresses vary; the peer is checked by CA + gateway URI
    ctx.load_verify_locations(cadata=creds["ca_chain"])
    # The key reaches the disk only in encrypted form while OpenSSL loads it.
    load_key_pair(ctx, creds["certificate"], creds["private_key"].encode())
    return ctx


def site_ca(creds: dict[str, Any]) -> x509.Certificate:
    """The site CA certificate (the first of the credentials' CA chain)."""
    try:
        certs = x509.load_pem_x509_certificates(str(creds.get("ca_chain", "")).encode())
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError("has no site CA certificate", field="ca_chain")
    return certs[0]


def gateway_pin(creds: dict[str, Any]) -> GatewayPin:
    """The one gateway these IP credentials may talk to (ConfigError when unpinned)."""
    try:
        return load_pin(creds, site_ca(creds))
    except IntegrityError as exc:
        raise ConfigError("the gateway pin does not verify: " + exc.message,
                          field="gateway_pin", hint="re-pin with `mamori provision pin`")


def three_star_guard(creds: dict[str, Any], gateway_id: str) -> ThreeStarGuard:
    """The device's own check of ★★★ commands (refuses them all without a platform key)."""
    key = creds.get("platform_command_key")
    verify = ed25519_verifier(raw_key_b64(key)) if key else None
    return ThreeStarGuard(str(creds["device_id"]), gateway_id, creds.get("three_star"),
                          verify, time.time if verify is not None else None)


def pinned_gateway(creds: dict[str, Any]) -> str:
    """The id of the gateway these credentials belong to (from the pin, or the BLE record)."""
    if creds.get("transport") == "ip":
        return gateway_pin(creds).gateway_id
    return str(creds.get("gateway_id") or "")
