"""FirewallService in the gateway runtime: sim mode, apply at start, drift alert and restore."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import StateError
from firmware.core.events import Event
from firmware.gateway.firewall import service as fwservice
from firmware.gateway.firewall.service import NO_CAP, SIM_NO_NETNS, FirewallService
from firmware.gateway.runtime.config import FirewallConfig, GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.firewall.netlab import Lab


def _gw(board: str, tmp_path: Path, netns: str | None = None,
        interval: float = 60.0) -> tuple[Gateway, list[Event]]:
    cfg = GatewayConfig(board_name=board, state_dir=tmp_path,
                        firewall=FirewallConfig(netns=netns, interval=interval))
    gw = Gateway(cfg, load_board(board))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    return gw, events


def test_sim_without_root_reports_not_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fwservice.nft, "has_cap_net_admin", lambda: False)
    gw, events = _gw("sim", tmp_path)
    svc = FirewallService(gw)
    asyncio.run(svc.start())
    st = svc.status()
    assert st["state"] == NO_CAP and not st["applied"]
    assert st["allowed_ports"] == [f"tcp/{LAN_DEVICE_PORT}", f"tcp/{ADMIN_HTTPS_PORT}"]
    asyncio.run(svc.stop())
    # A real board without CAP_NET_ADMIN must not run unprotected: start fails.
    gw2, _ = _gw("rpi4", tmp_path)
    with pytest.raises(StateError):
        asyncio.run(FirewallService(gw2).start())


def test_sim_never_firewalls_the_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fwservice.nft, "has_cap_net_admin", lambda: True)
    called: list[object] = []
    monkeypatch.setattr(fwservice.posture, "apply", lambda *a: called.append(a))
    gw, _ = _gw("sim", tmp_path)
    svc = FirewallService(gw)
    asyncio.run(svc.start())
    assert svc.status()["state"] == SIM_NO_NETNS and called == []


def test_service_applies_detects_drift_and_restores(lab: Lab, tmp_path: Path) -> None:
    lab.listen(lab.gw, [LAN_DEVICE_PORT, ADMIN_HTTPS_PORT], [])
    gw, events = _gw("rpi4", tmp_path, netns=lab.gw, interval=3600)

    async def scenario() -> None:
        svc = FirewallService(gw)
        await svc.start()
        assert svc.status()["state"] == "applied"
        assert [e.kind for e in events] == ["firewall.applied"]
        # Tamper: open SSH from anywhere. The next periodic check sees it, alerts, restores.
        lab.nft("insert", "rule", "inet", "mamori", "input", "tcp", "dport", "22", "accept")
        await svc.check_once()
        drift = [e for e in events if e.kind == "firewall.drift"]
        assert len(drift) == 1 and drift[0].severity == "alert"
        assert any("added" in c for c in drift[0].params["changes"])
        assert svc.status()["state"] == "applied (restored after drift)"
        assert "firewall.restored" in [e.kind for e in events]
        res = await svc.check_once()
        assert res["ok"] and svc.status()["state"] == "applied"
        # An undeclared listener raises one alert (not one per check).
        lab.listen(lab.gw, [2323], [])
        await svc.check_once()
        await svc.check_once()
        alerts = [e for e in events if e.kind == "firewall.listener"]
        assert len(alerts) == 1 and "tcp/2323" in alerts[0].reason
        assert svc.status()["unexpected_listeners"] == ["tcp/2323@0.0.0.0"]
        await svc.stop()
        # A restarted service re-applies idempotently and the check passes; its periodic
        # loop (short interval here) catches a tamper on its own.
        svc2 = FirewallService(gw, interval=0.05)
        await svc2.start()
        assert svc2.status()["drift"] == 0
        before = len([e for e in events if e.kind == "firewall.drift"])
        lab.nft("add", "rule", "inet", "mamori", "forward", "accept")
        for _ in range(600):  # bounded wait for the loop, not a timing assertion
            if len([e for e in events if e.kind == "firewall.drift"]) > before:
                break
            await asyncio.sleep(0.05)
        assert len([e for e in events if e.kind == "firewall.drift"]) == before + 1
        await svc2.stop()
        assert svc2.status()["checks"] >= 2

    asyncio.run(scenario())


def test_service_alerts_once_on_a_foreign_table_hooking_input(lab: Lab, tmp_path: Path) -> None:
    lab.listen(lab.gw, [LAN_DEVICE_PORT, ADMIN_HTTPS_PORT], [])
    gw, events = _gw("rpi4", tmp_path, netns=lab.gw, interval=3600)

    async def scenario() -> None:
        svc = FirewallService(gw)
        await svc.start()
        lab.nft("-f", "-", input="table ip other {\n chain INPUT {\n  type filter hook input "
                                 "priority -5; policy accept;\n }\n}\n")
        res = await svc.check_once()
        await svc.check_once()
        assert not res["ok"] and res["ruleset"]["drift"] == []
        alerts = [e for e in events if e.kind == "firewall.foreign"]
        assert len(alerts) == 1 and "ip other hooks input" in alerts[0].reason
        assert svc.status()["foreign_hooks"] == ["ip other hooks input"]
        assert svc.status()["state"] == "foreign table(s) on our hooks"
        assert "firewall.drift" not in [e.kind for e in events]  # our own table is intact
        lab.nft("delete", "table", "ip", "other")
        res = await svc.check_once()
        assert res["ok"] and svc.status()["state"] == "applied"
        await svc.stop()

    asyncio.run(scenario())
