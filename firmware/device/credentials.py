"""Load a device's credential file (from `mamori provision device`) and build its TLS context."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import Any

from firmware.common.certs import lan_floor, load_key_pair
from firmware.core.errors import ConfigError

CRED_FORMAT = "mamori-device-credentials/1"
REQUIRED = {"ip": ("certificate", "private_key", "ca_chain"),
            "ble": ("static_private", "record", "gateway_static_public"),
            "zigbee": ("install_code", "ieee", "record")}


def load(path: Path) -> dict[str, Any]:
    """Read and check a credential file; errors name the file and the missing field."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("credential file not found", str(path))
    except (OSError, ValueError) as exc:
        raise ConfigError("credential file is unreadable or not JSON (%s)" % type(exc).__name__,
                          str(path))
    if not isinstance(doc, dict) or doc.get("format") != CRED_FORMAT:
        raise ConfigError("is not a Mamori device credential file (format %s expected)"
                          % CRED_FORMAT, str(path))
    transport = doc.get("transport")
    if transport not in REQUIRED:
        raise ConfigError("unknown transport %r" % transport, str(path), "transport")
    for key in ("device_id", *REQUIRED[transport]):
        if not doc.get(key):
            raise ConfigError("is missing", str(path), key)
    return doc


def tls_context(creds: dict[str, Any]) -> ssl.SSLContext:
    """Client context for an IP device: its certificate + key, the site CA as the only trust."""
    if creds.get("transport") != "ip":
        raise ConfigError("only IP devices use TLS (this one is %s)" % creds.get("transport"))
    ctx = lan_floor(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False  # LAN addresses vary; the peer is checked by CA + gateway URI
    ctx.load_verify_locations(cadata=creds["ca_chain"])
    # The key reaches the disk only in encrypted form while OpenSSL loads it.
    load_key_pair(ctx, creds["certificate"], creds["private_key"].encode())
    return ctx
