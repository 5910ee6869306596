"""Device lists for MicroPython small-site gateways (``firmware.core.devicelist``).

A gateway issued for a MicroPython board gets a 32-byte list key: in its bundle's secrets
(``device_list_key``) and in the site (``mcu/<gateway>.list-key``, 0600). ``write_list`` makes
the gateway's current list from the site's records: every IP device certificate (SHA-256, id,
maker, model, serial), the revoked ones, the allowlist; numbered one above the previous list.
Run it again after issuing or revoking a device or changing the allowlist, and deliver the file
to the board (``mamori flash deploy … --device-list FILE``).
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path

from firmware.common.boards import load_board
from firmware.core import devicelist, schema
from firmware.core.errors import ConfigError, MamoriError, StateError
from provisioning import pki
from provisioning.files import read_json, write_file, write_json
from provisioning.site import Site

ENTRY_FIELDS = ("maker", "model", "transports", "min_firmware", "three_star", "constrained_stack")


def micropython_board(board: str) -> bool:
    """True when the board profile runs MicroPython (a small-site gateway)."""
    try:
        return load_board(board).runtime == "micropython"
    except MamoriError:
        return False


def key_path(site: Site, gateway: str) -> Path:
    """Where the site keeps a gateway's list key (0600)."""
    return site.root / "mcu" / (gateway + ".list-key")


def new_key(site: Site, gateway: str) -> str:
    """Make and keep a gateway's list key; its base64 (for the gateway's bundle)."""
    key = secrets.token_bytes(devicelist.KEY_LEN)
    write_file(key_path(site, gateway), key, secret=True, exclusive=True)
    return base64.b64encode(key).decode()


def _number(site: Site, gateway: str) -> int:
    path = site.root / "mcu" / (gateway + ".list-number")
    last = int(read_json(path)) if path.is_file() else 0
    write_json(path, last + 1, secret=False)
    return last + 1


def _device(rec: dict) -> dict:
    return {"sha256": rec["fingerprint"], "id": rec["id"], "maker": rec["maker"],
            "model": rec["model"], "serial": str(rec["serials"][0])}


def write_list(site: Site, gateway: str, out: Path) -> dict:
    """Write the gateway's current device list to `out` (public: no secret); its summary."""
    gw = site.issued(gateway)
    if gw.get("kind") != "gateway":
        raise ConfigError("%r is not a gateway" % gateway)
    if gw.get("revoked"):
        raise StateError("gateway %r is revoked" % gateway)
    path = key_path(site, gateway)
    if not path.is_file():
        raise ConfigError("gateway %r has no device-list key: it was not issued for a "
                          "MicroPython board" % gateway,
                          hint="Linux gateways check certificates and the CRL themselves")
    devices: list[dict] = []
    revoked: list[dict] = []
    for p in sorted((site.root / "issued").glob("*.json")):
        rec = read_json(p)
        if rec.get("kind") != "device" or rec.get("transport") != "ip" \
                or not rec.get("fingerprint"):
            continue
        (revoked if rec.get("revoked") else devices).append(_device(rec))
    entries = [{k: e[k] for k in ENTRY_FIELDS if k in e} for e in site.allowlist()]
    payload = {"site_id": site.site_id, "gateway_id": gateway, "level": site.level,
               "number": _number(site, gateway), "issued": pki.now().isoformat(),
               "devices": devices, "revoked": revoked, "allowlist": entries}
    schema.check(payload, devicelist.PAYLOAD, "device list")  # what the gateway will demand
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    write_json(Path(out), devicelist.seal(text, path.read_bytes(), gateway), secret=False)
    site.record("device-list", gateway, kind="gateway", number=payload["number"],
                devices=len(devices), revoked=len(revoked))
    return {"gateway_id": gateway, "device_list": str(out), "number": payload["number"],
            "devices": len(devices), "revoked": len(revoked)}
