"""Signed documents and the files a device or installer hands in.

The first input byte picks the parser: a site-signed document of each kind (allowlist,
installation ticket, BLE and Zigbee device records) through the strict decoder and
``verify_doc``, a ticket redeemed by the gateway's ``InstallTickets``, a device credential file
through ``credentials.load``, a device's ticket file through ``load_ticket``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from firmware.common.signeddoc import verify_doc
from firmware.core import strictjson
from firmware.device import credentials
from firmware.device.cli import load_ticket
from firmware.gateway.identity.tickets import InstallTickets
from provisioning.installsecret import issue_install_secret
from tests.fuzz import world

MAX_LEN = 65536
KINDS = ("mamori-allowlist", "mamori-install-ticket", "mamori-ble-device", "mamori-zigbee-device")
PARSERS = len(KINDS) + 3


def _docs(workdir: Path) -> list[bytes]:
    k = world.kit(workdir)
    made = workdir / "ticket.json"
    if not made.exists():
        for transport in ("ip", "ble", "zigbee"):
            k.device("fz-" + transport, transport)
        issue_install_secret(k.site, "gw1", "fz-ip", made)
    out = [(k.site.root / "allowlist.json").read_bytes(), made.read_bytes()]
    out += [(k.root / ("fz-%s.json" % t)).read_bytes() for t in ("ip", "ble", "zigbee")]
    return out


def seeds(workdir: Path) -> list[bytes]:
    """The site's allowlist, device credentials of each transport and a ticket, per parser."""
    docs = _docs(workdir)
    out = []
    for i in range(PARSERS):
        for d in docs:
            out.append(bytes([i]) + d)
            doc = json.loads(d)
            if isinstance(doc.get("record"), dict):
                out.append(bytes([i]) + json.dumps(doc["record"]).encode())
    return out


def setup(workdir: Path) -> Callable[[bytes], None]:
    """The site CA, a gateway's ticket checker, scratch files for the file parsers."""
    k = world.kit(workdir)
    ca = k.site.ca_cert()
    tickets = InstallTickets(k.state)
    scratch = workdir / "scratch.json"

    def one(data: bytes) -> None:
        if not data:
            return
        which, body = data[0] % PARSERS, data[1:]
        if which < len(KINDS):
            verify_doc(ca, strictjson.loads(body, "document"), KINDS[which])
        elif which == len(KINDS):
            tickets.redeem(strictjson.loads(body, "ticket", 8), "AAAA-BBBB-CCCC-DDDD", "fz-ip")
        else:
            scratch.write_bytes(body)
            (scratch.with_name(scratch.name + ".secret.txt")).write_text("AAAA-BBBB-CCCC-DDDD")
            if which == len(KINDS) + 1:
                credentials.load(scratch)
            else:
                load_ticket(scratch)
    return one
