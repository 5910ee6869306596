"""The `make run` demo house: the installer's side of a simulated installation.

`mamori demo` plays the installer on this PC: it creates a demo site beside the gateway's state
directory (what `mamori provision init-site/allow/device/gateway` make), issues credentials for
the simulated devices and an installation bundle, and writes ``house.json`` — the list the sim
board reads to run those devices and the embedded platform broker. Like `mamori commission`, it
then installs the bundle into the board's state directory and makes the first-use change of the
initial admin credential (the new one replaces it beside the bundle, 0600:
``SITE/gateways/sim-gateway.bundle.admin-credential``), so the demo gateway passes its live
self-test. It then starts the gateway (`mamori-gateway run --board sim --sim-house
SITE/house.json`). The gateway itself never provisions anything: it only reads what the
installer made.

Order matters: the gateway is issued first, then the devices (each pinned to it). On every start
the demo also plays the platform's CRL refresh: a list older than ``CRL_REFRESH_DAYS`` is re-signed
and installed offline into an installed state directory (what `mamori-gateway crl install`
does), so a demo left for weeks does not come back with a stale list. Demo houses made before
devices were pinned get their credentials pinned (`mamori provision pin`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.common.fsutil import atomic_write
from firmware.core.errors import ConfigError
from host_tools.commission.issue import allow_models, device_credentials, gateway_bundle, open_site
from provisioning.site import CRL_REFRESH_DAYS, Site

DEMO_GATEWAY = "sim-gateway"
HOUSE_FILE = "house.json"
HOUSE_FORMAT = "mamori-sim-house/1"
MAX_SIM_DEVICES = 1000
# Remote actions the demo platform may run on each simulated kind (default deny otherwise).
DEMO_GRANTS = {"lock": ["lock", "unlock"], "shutter": ["open", "close", "set"],
               "sensor": ["arm", "disarm"]}


@dataclass(frozen=True)
class SimDevice:
    """One simulated device of the demo house."""

    id: str
    kind: str
    transport: str
    maker: str
    model: str
    interval: float
    level: int


IP_DEVICES = [
    SimDevice("front-door-lock", "lock", "ip", "Mamori Labs", "SimLock 1", 2.0, 3),
    SimDevice("living-shutter", "shutter", "ip", "Mamori Labs", "SimShutter 1", 3.0, 2),
    SimDevice("hall-sensor", "sensor", "ip", "Mamori Labs", "SimSensor 1", 2.0, 2),
    SimDevice("garden-sensor", "sensor", "ip", "Mamori Labs", "SimSensor 1", 3.0, 2),
]
# Radio devices of the default demo (BLE Noise IK, Zigbee install code).
RADIO_DEVICES = [
    SimDevice("bedroom-window", "sensor", "ble", "Mamori Labs", "SimWindow 1", 2.0, 2),
    SimDevice("porch-motion", "sensor", "zigbee", "Mamori Labs", "SimMotion 1", 2.0, 2),
]
MODELS = {(d.maker, d.model, d.transport) for d in IP_DEVICES + RADIO_DEVICES}


def site_dir_for(state_dir: Path) -> Path:
    """The demo site lives beside the state directory, never inside it (it holds CA keys)."""
    state_dir = Path(state_dir).resolve()
    return state_dir.parent / (state_dir.name + "-demo-site")


def ip_devices(count: int) -> list[SimDevice]:
    """The first `count` simulated IP devices (the named four, then numbered sensors)."""
    if not 0 <= count <= MAX_SIM_DEVICES:
        raise ConfigError("the demo runs 0 to %d simulated devices, not %d"
                          % (MAX_SIM_DEVICES, count))
    named = IP_DEVICES[:count]
    extra = [SimDevice("sensor-%04d" % i, "sensor", "ip", "Mamori Labs", "SimSensor 1",
                       10.0, 2) for i in range(len(named) + 1, count + 1)]
    return named + extra


def refresh_crl(site: Site, state_dir: Path) -> None:
    """Re-sign an ageing CRL and install it offline in an installed state directory."""
    import datetime

    from firmware.gateway.cli.crl import install
    from firmware.gateway.identity.install import installed

    age = datetime.datetime.now(datetime.UTC) - site.crl().this_update
    if age > datetime.timedelta(days=CRL_REFRESH_DAYS):
        site.write_crl()
    if installed(state_dir):
        install(Path(state_dir), site.crl_pem().encode())


def ensure_demo_house(state_dir: Path, devices: int | None = None) -> Path:
    """Create the demo site, credentials, bundle and house list once; return house.json.

    `devices` None is the default demo: four IP devices plus a BLE and a Zigbee device; a
    number runs that many IP devices only.
    """
    site_dir = site_dir_for(state_dir)
    ip = ip_devices(len(IP_DEVICES) if devices is None else devices)
    radio = RADIO_DEVICES if devices is None else []
    site, _ = open_site(site_dir, None, "Mamori demo house")
    if not (site_dir / "platform" / "watch.pem").is_file():
        site.issue_platform("watch", server=False, client=True)  # demo sites made before it
    allow_models(site, MODELS)
    acl = [{"principal": "platform", "device": d.id, "actions": DEMO_GRANTS[d.kind]}
           for d in IP_DEVICES + RADIO_DEVICES]
    bundle, _ = gateway_bundle(site, "sim", DEMO_GATEWAY,
                               site_dir / "gateways" / (DEMO_GATEWAY + ".bundle"), acl)
    # Devices name their gateway (IP: a pin on its certificate, BLE: its static key), so they
    # are issued after it. Credentials lost by an older demo are left out ("skip").
    creds = device_credentials(site, ip + radio, site_dir / "devices", DEMO_GATEWAY,
                               lost="skip")
    refresh_crl(site, state_dir)
    house = site_dir / HOUSE_FILE
    doc: dict[str, Any] = {
        "format": HOUSE_FORMAT,
        "gateway": DEMO_GATEWAY,
        "bundle": str(bundle.relative_to(site_dir)),
        "platform": {"ca": "platform/ca.pem", "cert": "platform/server.pem",
                     "key": "platform/server.key", "crl": "ca/crl.pem"},
        "devices": [dict(vars(d), credentials=str(creds[d.id].relative_to(site_dir)))
                    for d in ip + radio if d.id in creds],
    }
    atomic_write(house, json.dumps(doc, indent=1, sort_keys=True).encode(), mode=0o600)
    return house


def install_demo(state_dir: Path, house: Path) -> str:
    """Install the demo bundle on the (stopped) sim board and change its initial credential.

    Returns what the credential step did: "changed" or "already".
    """
    from firmware.common.boards import load_board
    from firmware.gateway.identity.install import install_bundle, installed
    from host_tools.commission.credential import (
        change_on_state_dir,
        credential_file,
        first_use_change,
    )

    site_dir = Path(house).parent
    bundle = site_dir / "gateways" / (DEMO_GATEWAY + ".bundle")
    state_dir = Path(state_dir)
    if not installed(state_dir):
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        install_bundle(state_dir, bundle, load_board("sim"))
    change, current = change_on_state_dir(state_dir)
    return first_use_change(credential_file(bundle), DEMO_GATEWAY, change, current)

