"""The `make run` demo: a provisioned sim house made on first start (CPython).

Without --bundle, the sim board plays every part an installation has: it creates a demo site
(what `mamori provision init-site/allow/device/gateway` make on an installer's PC) in a folder
*beside* the state directory, issues credentials for the simulated devices and a bundle for the
gateway, and installs the bundle. The demo is then the real product: mutual TLS on the LAN, the
embedded Mosquitto as the platform, the WAN client, signed ★★★ commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.core.errors import MamoriError
from firmware.gateway.install import IDENTITY, install_bundle
from firmware.gateway.services.simdevices import (
    SIM_DEVICES,
    SIM_RADIO_DEVICES,
    sim_identities,
    sim_radio_identities,
)

DEMO_GATEWAY = "sim-gateway"
# Remote actions the demo platform may run on each simulated kind (default deny otherwise).
DEMO_GRANTS = {"lock": ["lock", "unlock"], "shutter": ["open", "close", "set"],
               "sensor": ["arm", "disarm"]}


@dataclass
class DemoHouse:
    """Where the demo's installer-side files are."""

    site_dir: Path
    bundle: Path
    credentials: dict[str, Path]
    identities: dict[str, dict[str, Any]]
    # BLE / Zigbee devices: identity plus "credentials" (path of their credential file)
    radio: dict[str, dict[str, Any]] = field(default_factory=dict)


def site_dir_for(state_dir: Path) -> Path:
    """The demo site lives beside the state directory, never inside it (it holds CA keys)."""
    state_dir = Path(state_dir).resolve()
    return state_dir.parent / (state_dir.name + "-demo-site")


def ensure_demo_house(state_dir: Path, board: dict[str, Any], devices: int,
                      radios: bool = False) -> DemoHouse:
    """Create the demo site, credentials and bundle once; install the bundle once.

    `radios` adds the simulated BLE and Zigbee devices (issued after the gateway: BLE
    credentials carry the gateway's static key).
    """
    from provisioning.devices import issue_device
    from provisioning.gateway import issue_gateway
    from provisioning.site import Site

    site_dir = site_dir_for(state_dir)
    identities = sim_identities(devices)
    creds = {dev_id: site_dir / "devices" / (dev_id + ".json") for dev_id in identities}
    bundle = site_dir / "gateways" / (DEMO_GATEWAY + ".bundle")
    if not (site_dir / "site.json").is_file():
        site = Site.init(site_dir, 3, "Mamori demo house")
        for _, _, transport, maker, model, _, _ in SIM_DEVICES + SIM_RADIO_DEVICES:
            if not any(e["model"] == model for e in site.allowlist()):
                site.allow(maker, model, transport)
    site = Site(site_dir)
    for dev_id, ident in identities.items():
        if not creds[dev_id].is_file():
            creds[dev_id].parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            issue_device(site, ident["transport"], ident["maker"], ident["model"], dev_id,
                         creds[dev_id])
    if not bundle.is_file():
        bundle.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        acl = [{"principal": "platform", "device": dev_id,
                "actions": DEMO_GRANTS[kind]}
               for dev_id, kind, *_ in SIM_DEVICES + SIM_RADIO_DEVICES]
        issue_gateway(site, board["name"], DEMO_GATEWAY, bundle, acl=acl)
    if not (Path(state_dir) / IDENTITY / "gateway.json").is_file():
        install_bundle(Path(state_dir), bundle, board)
    radio: dict[str, dict[str, Any]] = {}
    for dev_id, ident in (sim_radio_identities() if radios else {}).items():
        path = site_dir / "devices" / (dev_id + ".json")
        if not path.is_file() and site.issued_path(dev_id).exists():
            continue  # issued by an older demo and lost: leave it out
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                issue_device(site, ident["transport"], ident["maker"], ident["model"], dev_id,
                             path, gateway=DEMO_GATEWAY)
            except MamoriError:
                continue  # a demo site made before radio devices existed (not allowlisted)
        radio[dev_id] = dict(ident, credentials=path)
    return DemoHouse(site_dir, bundle, creds, identities, radio)
