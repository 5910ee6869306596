"""A revoked BLE or Zigbee device is cut off by the CRL install too (issue 14, part 1).

In process, with the real BLE service (Noise IK over the sim radio's loopback link, the real
device agent) and the real zigpy application of the Zigbee service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.common.installcode import link_key
from firmware.core.errors import AuthError, IntegrityError
from firmware.core.events import Event
from firmware.device.blerunner import run_ble_session
from firmware.device.credentials import three_star_guard
from firmware.device.portable.agent import DeviceAgent
from firmware.gateway.ble.service import BleService, LoopbackBleRadio
from firmware.gateway.devices.revocation import RevocationService
from firmware.gateway.devices.router import DeviceRouter
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.service import SimZigbeeRadio, ZigbeeService
from tests.provisioning.sitekit import Kit, load


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def test_ble_and_zigbee_sessions_closed_and_refused_again(kit: Kit) -> None:
    ble_creds = load(kit.device("win-1", transport="ble"))
    zb_creds = load(kit.device("zb-1", transport="zigbee"))
    keep = load(kit.device("win-2", transport="ble"))

    async def main() -> list[Event]:
        gw = Gateway(GatewayConfig("sim", kit.state), load_board("sim"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        radio = LoopbackBleRadio()
        ble = BleService(gw, radio, handshake_timeout=2)
        zigbee = ZigbeeService(gw, None, poll=0.02)
        crl = RevocationService(gw, DeviceRouter(gw, {"ble": ble, "zigbee": zigbee}),
                                tick=0.05)
        for s in (ble, zigbee, crl):
            await s.start()
        agents = {}
        stop = asyncio.Event()
        tasks = []
        for creds in (ble_creds, keep):
            dev = creds["device_id"]
            agents[dev] = DeviceAgent(dev, kind="lock", interval=0.5, maker="Acme",
                                      model="Lock1", transport="ble",
                                      guard=three_star_guard(creds, "gw1"))
            tasks.append(asyncio.create_task(run_ble_session(agents[dev], creds,
                                                             radio.connect(), stop=stop)))
        await zigbee.permit(zb_creds, 30, interval=5)
        zb_radio = zigbee.radio
        assert isinstance(zb_radio, SimZigbeeRadio)
        key = link_key(bytes.fromhex(zb_creds["install_code"]))
        assert zb_radio.device_joins(zb_creds["ieee"], 0x2222, key)
        await until(lambda: {"win-1", "win-2"} <= set(ble.links))

        kit.site.revoke("win-1", "stolen")
        kit.site.revoke("zb-1", "stolen")
        answer = await crl.install(kit.site.crl_pem().encode())
        assert sorted(answer["revoked_devices"]) == ["win-1", "zb-1"]
        # closed as part of the install: no session is left when it returns
        assert "win-1" not in ble.links and "zb-1" not in zigbee.status()["devices"]
        assert not zb_radio.report(zb_creds["ieee"])  # its frames no longer count
        # the gateway no longer serves that link: the device's frames reach nobody
        seen = agents["win-1"].seq
        await until(lambda: agents["win-1"].seq >= seen + 2)
        assert gw.liveness.devices["win-1"].state == "removed"
        states = {d["id"]: (d["state"], d.get("reason")) for d in gw.devices()}
        assert states["win-1"] == ("removed", "revoked")
        assert states["zb-1"] == ("removed", "revoked")
        assert states["win-2"][0] == "online" and "win-2" in ble.links
        # no way back: a new BLE link and a new Zigbee join window are refused
        again = DeviceAgent("win-1", kind="lock", transport="ble")
        with pytest.raises(AuthError):
            await run_ble_session(again, ble_creds, radio.connect(), heartbeats=1)
        with pytest.raises(AuthError, match="revoked"):
            await zigbee.permit(zb_creds, 30)
        # an older list cannot bring them back
        with pytest.raises(IntegrityError):
            await crl.install(b"")
        status = crl.status()
        assert status["revoked_devices"] == 2 and status["installs"] == 1
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in (crl, zigbee, ble):
            await s.stop()
        return events

    events = asyncio.run(main())
    revoked = [e for e in events if e.kind == "device.revoked"]
    assert sorted(e.target for e in revoked) == ["win-1", "zb-1"]
    assert all(e.severity == "alert" and e.is_security for e in revoked)
    assert any(e.kind == "auth.refused" and "revoked" in e.reason for e in events)
