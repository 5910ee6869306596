"""An installed gateway whose every personal-data store holds canaries (tests of reset/transfer).

``build_house`` installs a real bundle, then writes through the real stores: the admin API
(accounts, device name, a maintenance window, a throttled login, a diagnostics snapshot, the
owner's personal data), the access log, the WAN outbox and the status file.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.gateway.accesslog.store import AccessLogStore
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.wan.queue import OutboundQueue
from firmware.gateway.wan.service import QUEUE_FILE, envelope, outbox_key
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.admin.helpers import NEW_INSTALLER, OWNER_NEW, OWNER_PW, Client, body

GATEWAY_ID = "gw-canary"


@dataclass
class House:
    """Where the house is and what was planted in it."""

    site: Path
    bundle: Path
    state: Path
    installer: str  # the installer's (changed) admin credential
    owner: str
    canaries: dict[str, str] = field(default_factory=dict)

    def needles(self) -> list[bytes]:
        """Every canary, as bytes to search raw storage for."""
        return [v.encode() for v in self.canaries.values()]


def issue(root: Path) -> tuple[Path, Path, str]:
    """A site and a gateway bundle; (site dir, bundle, initial admin credential)."""
    site = Site.init(root / "site", 3, "Canary house")
    bundle = root / "gw.bundle"
    issue_gateway(site, "sim", GATEWAY_ID, bundle)
    initial = (root / "gw.bundle.admin-credential").read_text().splitlines()[1].strip()
    return root / "site", bundle, initial


def build_house(root: Path, state: Path | None = None) -> House:
    """Install a gateway in STATE (default ROOT/state) and plant canaries in every store."""
    site, bundle, initial = issue(root)
    state = state or root / "state"
    board = load_board("sim")
    install_bundle(state, bundle, board)
    tag = secrets.token_hex(4)
    owner = "cnry-owner-" + tag
    house = House(site, bundle, state, NEW_INSTALLER, owner, {
        "owner": owner, "name": "CNRY-NAME-" + tag, "email": "cnry-%s@example.jp" % tag,
        "address": "CNRY-ADDR-Setagaya-" + tag, "devname": "CNRY-DEVNAME-" + tag,
        "guard": "cnry-guard-" + tag, "reason": "CNRY-REASON-" + tag,
        "addr": "198.51.100.%d" % (int(tag[:2], 16) % 200 + 20)})
    plant_admin(house, initial)
    plant_records(house)
    return house


def plant_admin(house: House, initial: str) -> None:
    """Accounts, settings, window, throttle, diagnostics and personal data via the admin API."""
    c = house.canaries
    app = AdminApp(house.state, load_board("sim"))
    try:
        inst = Client(app)
        r = inst.call("POST", "/api/credential/initial",
                      {"account": "installer", "old": initial, "new": house.installer})
        assert r.status == 204, body(r)
        assert inst.login("installer", house.installer).status == 200
        for name, role in ((house.owner, "owner"), (house.owner + "-support", "maintenance")):
            r = inst.call("POST", "/api/accounts", {"name": name, "role": role,
                                                    "password": OWNER_PW})
            assert r.status == 200, body(r)
        owner = Client(app, addr=c["addr"])
        assert owner.call("POST", "/api/credential/initial",
                          {"account": house.owner, "old": OWNER_PW,
                           "new": OWNER_NEW}).status == 204
        assert Client(app, addr=c["addr"]).login(house.owner, "wrong-" + OWNER_NEW).status == 401
        assert owner.login(house.owner, OWNER_NEW).status == 200
        assert owner.call("PUT", "/api/owner/data", {"name": c["name"], "email": c["email"],
                                                     "address": c["address"]}).status == 204
        assert owner.call("PUT", "/api/settings/device_name",
                          {"value": c["devname"]}).status == 200
        assert owner.call("POST", "/api/maintenance/windows", {"minutes": 60}).status == 200
        assert inst.call("POST", "/api/diagnostics").status == 200
    finally:
        app.close()


def _events(house: House) -> list[Event]:
    c = house.canaries
    return [Event("command.executed", "notice", "platform", principal=c["guard"],
                  action="unlock", target="front-door", result="ok", reason=c["reason"],
                  params={"requested_by": c["guard"]}),
            Event("admin.login", "warning", "local-admin", principal=c["owner"],
                  action="login", target="admin", result="fail", reason=c["reason"],
                  params={"addr": c["addr"]})]


def plant_records(house: House) -> None:
    """The access log, the WAN outbox and the status file see events naming the household."""
    log = AccessLogStore(house.state)
    log.open()
    for ev in _events(house):
        log.append(ev.to_dict())
    log.close()
    board = load_board("sim")
    q = OutboundQueue(house.state / QUEUE_FILE, key=outbox_key(house.state, board))
    for i, ev in enumerate(_events(house)):
        topic, payload = envelope(GATEWAY_ID, "events", ev.to_dict(), 2, "m%d" % i)
        q.put("m%d" % i, topic, payload, 2)
    q.close()

    async def status() -> None:
        gw = Gateway(GatewayConfig(board_name="sim", state_dir=house.state), board)
        for ev in _events(house):
            gw.emit(ev)
            gw.write_status()  # rewritten again and again, as every second in the field

    asyncio.run(status())
    doc = json.loads((house.state / "run" / "status.json").read_text())
    assert doc["events"], doc
