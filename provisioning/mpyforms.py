"""What a MicroPython device needs beside its credential file: DER forms and a compact descriptor.

Mbed TLS in MicroPython's ``ssl`` loads certificates and keys in DER (the credential file's PEM
key is refused as "invalid key"), and the port can neither parse X.509 nor verify the site's
ECDSA signatures. Next to ``OUT`` (the credential file, 0600) ``mamori provision device``
writes, for IP devices:

- ``OUT.cert.der``: the device certificate (0644);
- ``OUT.key.der``: its private key, PKCS#8 DER (0600, like every private key);
- ``OUT.ca.der``: the site CA certificate, the device's only trust anchor (0644);
- ``OUT.mpy.json``: device id, maker, model, the gateway it is pinned to and the SHA-256 of that
  gateway's certificate (the pin in the form a port without X.509 parsing can check: it hashes
  the certificate the TLS handshake showed), the model's ★★★ actions (0644: nothing secret).

The MicroPython agent (``firmware.device.portable.mpyagent``) reads these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provisioning.files import write_file, write_json

FORMAT = "mamori-mpy-device/1"
SUFFIXES = {"certificate": ".cert.der", "private_key": ".key.der", "ca": ".ca.der"}
DESCRIPTOR = ".mpy.json"


def paths(out: Path) -> dict[str, Path]:
    """Where each DER form and the descriptor of credential file `out` go."""
    out = Path(out)
    found = {k: out.with_name(out.name + s) for k, s in SUFFIXES.items()}
    found["descriptor"] = out.with_name(out.name + DESCRIPTOR)
    return found


def write_der(out: Path, cert: x509.Certificate, key: Any, site_ca: x509.Certificate) -> dict:
    """Write the DER forms beside `out`; returns their paths (str) by name."""
    where = paths(out)
    write_file(where["certificate"], cert.public_bytes(serialization.Encoding.DER),
               secret=False, exclusive=True)
    write_file(where["private_key"], key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()), secret=True, exclusive=True)
    write_file(where["ca"], site_ca.public_bytes(serialization.Encoding.DER), secret=False,
               exclusive=True)
    return {k: str(where[k]) for k in SUFFIXES}


def write_descriptor(out: Path, creds: dict[str, Any]) -> str:
    """Write (or rewrite, after a re-pin) ``OUT.mpy.json`` from the credential document."""
    where = paths(out)
    pin = dict(creds["gateway_pin"]["payload"])
    doc = {"format": FORMAT, "device_id": creds["device_id"], "maker": creds.get("maker", ""),
           "model": creds.get("model", ""), "site_id": creds.get("site_id", ""),
           "gateway_id": pin["gateway_id"], "gateway_sha256": pin["certificate_sha256"],
           "three_star": list(creds.get("three_star") or []),
           "files": {k: where[k].name for k in SUFFIXES}}
    write_json(where["descriptor"], doc, secret=False)
    return str(where["descriptor"])
