"""One-time installation tickets on the LAN (real mutual TLS on loopback) and their refusals."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import AuthError, ConfigError
from firmware.core.events import Event
from firmware.device.cli import load_ticket
from firmware.device.credentials import tls_context as client_context
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.binding import BOUND, DeviceBinding, set_required
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning.gateway import issue_gateway
from provisioning.installsecret import issue_install_secret
from tests.provisioning.sitekit import Kit, load


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path / "k")


def ticket(kit: Kit, dev_id: str, gateway: str = "gw1", minutes: int = 5) -> tuple[dict, str]:
    out = kit.root / ("%s-%s-%d.ticket" % (dev_id, gateway, minutes))
    issue_install_secret(kit.site, gateway, dev_id, out, minutes=minutes)
    return load_ticket(out)


Scenario = Callable[[LanService, list[Event]], Awaitable[None]]


def run_gateway(kit: Kit, scenario: Scenario) -> list[Event]:
    events: list[Event] = []

    async def main() -> None:
        gw = Gateway(GatewayConfig("sim", kit.state), load_board("sim"))
        gw.bus.subscribe(events.append)
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=server_context(kit.state),
                         authorizer=DeviceBinding(kit.state).wrap(DeviceAuthorizer(kit.state)))
        await lan.start()
        try:
            await scenario(lan, events)
        finally:
            await lan.stop()

    asyncio.run(main())
    return events


async def connect(lan: LanService, creds: dict, tk: tuple[dict, str] | None = None
                  ) -> DeviceAgent:
    agent = DeviceAgent(creds["device_id"], interval=0.2, maker=creds["maker"],
                        model=creds["model"], ticket=tk[0] if tk else None,
                        secret=tk[1] if tk else None)
    await run_session(agent, "127.0.0.1", lan.port, client_context(creds), heartbeats=1)
    return agent


def reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events if e.kind == "auth.refused"]


def test_required_binding_ticket_once_then_bound(kit: Kit) -> None:
    creds = load(kit.device("door"))
    tk = ticket(kit, "door")
    set_required(kit.state, True)

    async def scenario(lan: LanService, events: list[Event]) -> None:
        with pytest.raises(AuthError):
            await connect(lan, creds)  # valid certificate, but no ticket on a binding site
        agent = await connect(lan, creds, tk)
        assert agent.ready and agent.ticket is None
        await connect(lan, creds)  # bound now: no ticket needed
        with pytest.raises(AuthError):
            await connect(lan, creds, tk)  # second use of the ticket

    events = run_gateway(kit, scenario)
    r = reasons(events)
    assert len(r) == 2 and "not bound" in r[0] and "already used" in r[1]
    assert "door" in json.loads((kit.state / BOUND).read_text())
    assert all(tk[1] not in repr(e.to_dict()) for e in events)


def test_ticket_is_checked_even_where_binding_is_optional(kit: Kit) -> None:
    creds = load(kit.device("hall"))
    kit.device("other")
    issue_gateway(kit.site, "sim", "gw2", kit.root / "gw2.bundle")
    wrong_gw = ticket(kit, "hall", gateway="gw2")
    wrong_dev = ticket(kit, "other")
    good = ticket(kit, "hall")

    async def scenario(lan: LanService, events: list[Event]) -> None:
        for tk in (wrong_gw, wrong_dev, (good[0], "AAAA-BBBB-CCCC-DDDD")):
            with pytest.raises(AuthError):
                await connect(lan, creds, tk)
        await connect(lan, creds)  # optional binding: credentials alone still admit

    r = reasons(run_gateway(kit, scenario))
    assert len(r) == 3
    assert "another gateway" in r[0] and "another device" in r[1]
    assert "wrong installation secret" in r[2]
    with pytest.raises(AuthError, match="without its secret"):
        DeviceBinding(kit.state).check({"ticket": good[0]}, {"id": "hall"})


def test_expired_and_forged_tickets_refused(kit: Kit) -> None:
    kit.device("late")
    tk, secret = ticket(kit, "late", minutes=1)
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)).timestamp()
    binding = DeviceBinding(kit.state, now=lambda: later)
    with pytest.raises(AuthError, match="expired"):
        binding.check({"ticket": tk, "secret": secret}, {"id": "late"})
    forged = dict(tk, payload=dict(tk["payload"], not_after="2099-01-01T00:00:00+00:00"))
    with pytest.raises(AuthError, match="refused"):
        DeviceBinding(kit.state).check({"ticket": forged, "secret": secret}, {"id": "late"})
    assert DeviceBinding(kit.state).bound() == {}
    # and still usable once, in time
    assert DeviceBinding(kit.state).check({"ticket": tk, "secret": secret},
                                          {"id": "late"}) is not None


def test_record_demand_and_damaged_policy(kit: Kit) -> None:
    b = DeviceBinding(kit.state)
    assert b.check({}, {"id": "x"}) is None
    with pytest.raises(AuthError, match="not bound"):
        b.check({}, {"id": "x", "binding": "ticket"})
    (kit.state / "policy").mkdir(exist_ok=True)
    (kit.state / "policy" / "device-binding.json").write_text("{broken")
    with pytest.raises(ConfigError):
        b.check({}, {"id": "x"})  # fails closed


def test_device_cli_reads_the_secret_file_or_stdin(kit: Kit, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
    kit.device("cli")
    out = kit.root / "cli.ticket"
    issue_install_secret(kit.site, "gw1", "cli", out)
    doc, secret = load_ticket(out)
    assert doc["kind"] == "mamori-install-ticket" and len(secret) == 19
    out.with_name(out.name + ".secret.txt").unlink()
    monkeypatch.setattr("sys.stdin", io.StringIO("abcd-efgh-ijkl-mnop\n"))
    assert load_ticket(out)[1] == "ABCD-EFGH-IJKL-MNOP"
    (kit.root / "junk.ticket").write_text("{}")
    with pytest.raises(ConfigError):
        load_ticket(kit.root / "junk.ticket")
