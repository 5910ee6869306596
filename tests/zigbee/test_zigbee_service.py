"""Zigbee in the gateway: join windows through the control socket, liveness, rogue joins."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boards import load_board
from firmware.common.installcode import DEFAULT_TC_LINK_KEY, link_key
from firmware.core.errors import AuthError, ConfigError, PolicyError, StateError
from firmware.core.events import Event
from firmware.gateway.identity.admission import install_crl
from firmware.gateway.runtime import control
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee import coordinator
from firmware.gateway.zigbee.service import (
    RECORD_KIND,
    SimZigbeeRadio,
    ZigbeeService,
    radio_for_board,
)
from provisioning import pki
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    # short path: the control socket path must fit sockaddr_un
    return Kit(tmp_path_factory.mktemp("zbs"))


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


def make(state: Path, with_control: bool = False
         ) -> tuple[Gateway, list[Event], ZigbeeService, ControlService | None]:
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    ctl = ControlService(gw) if with_control else None
    return gw, events, ZigbeeService(gw, ctl, poll=0.02), ctl


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def test_permit_join_liveness_and_registry(kit: Kit) -> None:
    creds = load(kit.device("zb-svc", transport="zigbee"))
    key = link_key(bytes.fromhex(creds["install_code"]))

    async def main() -> None:
        gw, events, svc, _ = make(kit.state)
        await svc.start()
        radio = svc.radio
        assert isinstance(radio, SimZigbeeRadio)
        # no window: a join is a rogue
        assert not radio.device_joins(creds["ieee"], 0x1234, key)
        res = await svc.permit(creds, 30, interval=5)
        assert res == {"device": "zb-svc", "ieee": creds["ieee"], "seconds": 30}
        assert svc.status()["join_window"]["device"] == "zb-svc"
        assert "install_code" not in repr(res) and creds["install_code"] not in repr(
            svc.status())
        assert radio.device_joins(creds["ieee"], 0x1234, key)
        dev = {d["id"]: d for d in gw.devices()}["zb-svc"]
        assert dev["transport"] == "zigbee" and dev["state"] == "online"
        assert dev["encrypted"] is True and dev["mode"] == "install-code-link-key"
        before = gw.liveness.devices["zb-svc"].last_seen
        assert radio.report(creds["ieee"])
        await until(lambda: gw.liveness.devices["zb-svc"].last_seen > before)
        rogue = [e for e in events if e.kind == "rogue.zigbee"]
        assert len(rogue) == 1 and rogue[0].severity == "alert"
        assert svc.status()["rogue_joins"] == 1 and svc.status()["devices"] == ["zb-svc"]
        await svc.stop()
        # a restarted gateway remembers the joined device
        gw2, _e, svc2, _ = make(kit.state)
        await svc2.start()
        assert gw2.liveness.devices["zb-svc"].transport == "zigbee"
        await svc2.stop()

    run(main)


def test_permit_refuses_bad_credentials(kit: Kit, tmp_path: Path) -> None:
    good = load(kit.device("zb-bad", transport="zigbee"))
    lost = load(kit.device("zb-lost", transport="zigbee"))
    kit.site.revoke("zb-lost")
    install_crl(kit.state, kit.site.crl_pem().encode())
    other = Kit(tmp_path / "o", name="Other")
    foreign = load(other.device("zb-foreign", transport="zigbee"))
    forged = dict(good, record=pki.sign_doc(kit.site.ca_key(), RECORD_KIND, dict(
        good["record"]["payload"], maker="Cheap", model="Plug")))
    tampered = dict(good, record=dict(good["record"], payload=dict(
        good["record"]["payload"], device_id="zb-evil")), device_id="zb-evil")
    swapped = dict(good, ieee="02:00:00:00:00:00:00:01")

    async def main() -> None:
        _gw, _events, svc, _ = make(kit.state)
        await svc.start()
        cases: list[tuple[dict, type[Exception], str]] = [
            (lost, AuthError, "revoked"), (foreign, AuthError, "refused"),
            (forged, PolicyError, "allowlist"), (tampered, AuthError, "refused"),
            (swapped, AuthError, "do not match"),
            (load(kit.device("ip-not-zb")), ConfigError, "not for a Zigbee")]
        for creds, exc, why in cases:
            with pytest.raises(exc, match=why):
                await svc.permit(creds, 30)
        assert svc.app is not None and svc.app.policy.window is None
        with pytest.raises(ConfigError):
            await svc.permit(good, 3600)
        await svc.stop()

    run(main)


def test_permit_and_rogue_join_through_the_control_socket(kit: Kit) -> None:
    creds = load(kit.device("zb-ctl", transport="zigbee"))

    async def main() -> None:
        _gw, events, svc, ctl = make(kit.state, with_control=True)
        assert ctl is not None
        await ctl.start()
        await svc.start()
        assert os.stat(ctl.path).st_mode & 0o777 == 0o600
        res = await asyncio.to_thread(control.request, kit.state, "zigbee.permit",
                                      {"credentials": creds, "seconds": 20})
        assert res["device"] == "zb-ctl"
        rogue = await asyncio.to_thread(control.request, kit.state, "zigbee.sim-join",
                                        {"ieee": "02:aa:bb:cc:dd:ee:ff:00",
                                         "key": DEFAULT_TC_LINK_KEY.hex()})
        assert rogue["joined"] is False
        ok = await asyncio.to_thread(control.request, kit.state, "zigbee.sim-join",
                                     {"ieee": creds["ieee"], "key": link_key(
                                         bytes.fromhex(creds["install_code"])).hex()})
        assert ok["joined"] is True
        with pytest.raises(control.ControlError, match="another site|refused|missing"):
            await asyncio.to_thread(control.request, kit.state, "zigbee.permit",
                                    {"credentials": dict(creds, record={"x": 1})})
        r = [e for e in events if e.kind == "rogue.zigbee"]
        assert len(r) == 1 and "default trust-centre key" in r[0].reason
        # the install code never reaches an event
        for e in events:
            assert creds["install_code"] not in repr(e.to_dict())
        await svc.stop()
        await ctl.stop()
        assert not ctl.path.exists()

    run(main)


def test_real_boards_use_their_radio_library_or_report_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert radio_for_board(load_board("rpi4")) is None  # a real coordinator
    assert isinstance(radio_for_board(load_board("sim")), SimZigbeeRadio)
    with pytest.raises(StateError, match="no Zigbee radio"):
        radio_for_board(load_board("sim").with_changes(radios={"ble": False}))
    for radio_type in ("znp", "ezsp", "deconz"):  # each family's own application class
        assert coordinator.app_class(radio_type).__module__.startswith(
            coordinator.LIBRARIES[radio_type][0].split(".")[0])
    monkeypatch.setitem(coordinator.LIBRARIES, "ezsp", ("no_such_radio_lib.app", "bellows"))
    with pytest.raises(StateError, match="radio library not installed"):
        coordinator.app_class("ezsp")
    with pytest.raises(ConfigError, match="unknown Zigbee radio type"):
        coordinator.app_class("xbee")


def test_service_without_radio_stays_down_gateway_runs(tmp_path: Path) -> None:
    async def main() -> None:
        gw = Gateway(GatewayConfig(board_name="rpi4", state_dir=tmp_path), load_board("rpi4"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        svc = ZigbeeService(gw)
        await svc.start()
        st = svc.status()
        assert st["state"] == "unavailable" and "did not start" in st["error"]
        assert st["backend"] == "ezsp" and st["library"] == "bellows"
        assert st["controller"] == {"state": "error", "port": "/dev/ttyUSB0"}
        assert [e.kind for e in events] == ["zigbee.unavailable"]
        with pytest.raises(StateError, match="not available"):
            await svc.permit({}, 10)
        await svc.stop()

    run(main)
