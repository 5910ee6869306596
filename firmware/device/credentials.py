"""Load a device's credential file (from `mamori provision device`) and build its TLS context."""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError
from firmware.gateway.tlspolicy import client_context

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
    ctx = client_context(cadata=creds["ca_chain"])
    # The gateway is identified by its site certificate (checked against the site CA), not by
    # a DNS name: devices reach it by LAN address.
    ctx.check_hostname = False
    with tempfile.TemporaryDirectory(prefix="mamori-dev-") as tmp:
        cert = os.path.join(tmp, "c.pem")
        key = os.path.join(tmp, "k.pem")
        for name, data in ((cert, creds["certificate"]), (key, creds["private_key"])):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(data)
        try:
            ctx.load_cert_chain(cert, key)
        except ssl.SSLError:
            raise ConfigError("the certificate and private key in the credentials do not match")
    return ctx
