"""Zigbee through zigpy-znp's real ControllerApplication over a pseudo-terminal, against a ZNP
responder speaking Z-Stack's MT protocol (frames, FCS and all).

The install-code window admits exactly the one device; another join during the window and any
join outside it are refused, alerted (rogue.zigbee -> rogue.device) and asked to leave; the
network key is random, never a public default; the library's backup is kept encrypted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.common.installcode import DEFAULT_TC_LINK_KEY, link_key
from firmware.core.events import Event
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.coordinator import BACKUP_KEY, WELL_KNOWN_NWK_KEYS
from firmware.gateway.zigbee.service import ZigbeeService
from tests.provisioning.sitekit import Kit, load
from tests.zigbee.znp_responder import ZnpResponder

ROGUE_A = "02:11:22:33:44:55:66:01"
ROGUE_B = "02:11:22:33:44:55:66:02"


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.02)


def znp_board(port: str) -> Board:
    board = load_board("sim")
    return board.with_changes(radios=dict(board.to_dict()["radios"], zigbee={
        "radio_type": "znp", "serial_port": port, "baudrate": 115200}))


class Site:
    """A gateway (Zigbee service on a ZNP coordinator, monitor) and its coordinator's air."""

    def __init__(self, state: Path, znp: ZnpResponder | None = None) -> None:
        self.owned = znp is None  # a stick handed in outlives this site
        self.znp = znp or ZnpResponder()
        self.gw = Gateway(GatewayConfig(board_name="sim", state_dir=state),
                          znp_board(self.znp.path))
        self.events: list[Event] = []
        self.gw.bus.subscribe(self.events.append)
        self.monitor = MonitorService(self.gw, period=0.05)
        self.svc = ZigbeeService(self.gw, poll=0.05)

    async def __aenter__(self) -> Site:
        self.znp.start()
        await self.monitor.start()
        await self.svc.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.svc.stop()
        await self.monitor.stop()
        if self.owned:
            self.znp.close()

    def kinds(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.kind == kind]

    async def refused(self, ieee: str, reason: str) -> None:
        """A rogue.zigbee alert, the monitor's rogue report and a leave request for ieee."""
        await until(lambda: any(e.target == ieee for e in self.kinds("rogue.device"))
                    and ieee in self.znp.leave_requests())
        alerts = [e for e in self.kinds("rogue.zigbee") if e.target == ieee]
        assert alerts and alerts[-1].severity == "alert" and reason in alerts[-1].reason
        assert ieee not in self.svc.joined


@pytest.fixture()
def kit(tmp_path: Path) -> Kit:
    return Kit(tmp_path)


def test_install_code_window_admits_exactly_the_one_device(kit: Kit) -> None:
    creds = load(kit.device("zb-porch", transport="zigbee"))
    key = link_key(bytes.fromhex(creds["install_code"]))

    async def main() -> None:
        async with Site(kit.state) as s:
            assert s.svc.app is not None, s.svc.error
            st = s.svc.status()
            assert st["backend"] == "znp" and st["library"] == "zigpy-znp" and st["version"]
            assert st["controller"]["state"] == "up" and st["controller"]["model"] == "CC2652"
            # outside any window: a device that holds the network key rejoins via a router
            s.znp.rejoin(ROGUE_A, 0x3001)
            await s.refused(ROGUE_A, "no join window open")
            # the window: the library installs the device's install-code key on the radio
            await s.svc.permit(creds, 30)
            await until(s.znp.permitting)
            assert s.znp.state.install_keys == {creds["ieee"]: key}
            assert s.znp.state.join_uses_install_code
            # during the window: another device gets no key from the trust centre...
            assert not s.znp.join(ROGUE_B, 0x3002, DEFAULT_TC_LINK_KEY)
            # ...and one that rejoins anyway is refused, alerted and asked to leave
            s.znp.rejoin(ROGUE_B, 0x3002)
            await s.refused(ROGUE_B, "not the one being installed")
            assert s.svc.app.policy.window is not None  # still open for the right device
            assert not s.znp.join(creds["ieee"], 0x4001, bytes(16))  # wrong key: no entry
            assert s.znp.join(creds["ieee"], 0x4001, key)
            await until(lambda: creds["ieee"] in s.svc.joined)
            dev = {d["id"]: d for d in s.gw.devices()}["zb-porch"]
            assert dev["transport"] == "zigbee" and dev["pairing"] == "install-code"
            joined = s.kinds("device.joined")
            assert len(joined) == 1 and joined[0].params["key_checked_by"] == "trust centre"
            # the window closes with the one device: the radio stops permitting
            await until(lambda: not s.znp.permitting())
            assert s.svc.app.policy.window is None
            s.znp.rejoin(ROGUE_A.replace("01", "03"), 0x3003)
            await s.refused(ROGUE_A.replace("01", "03"), "no join window open")
            assert creds["ieee"] not in s.znp.leave_requests()
            assert sorted(s.svc.joined) == [creds["ieee"]]
            assert s.znp.bad_fcs == 0 and not s.znp.unknown

    run(main)


def test_network_key_random_and_backup_encrypted(kit: Kit, tmp_path: Path) -> None:
    async def main() -> list[bytes]:
        keys = []
        for state in (kit.state, Kit(tmp_path / "second").state):
            async with Site(state) as s:
                assert s.svc.coordinator is not None, s.svc.error
                key = s.svc.coordinator.network_key()
                assert s.znp.network_key() == key  # what the radio holds
                keys.append(key)
                backup = json.loads(KeyStore(state).get(BACKUP_KEY))
                assert backup["network_info"]["network_key"]["key"].replace(":", "") == key.hex()
                for path in state.rglob("*"):  # the key is nowhere in clear on disk
                    if path.is_file():
                        data = path.read_bytes()
                        assert key not in data and key.hex().encode() not in data
                        assert key.hex(":").encode() not in data
        return keys

    keys = run(main)
    assert len(set(keys)) == 2 and len(keys[0]) == 16
    assert not set(keys) & set(WELL_KNOWN_NWK_KEYS) and DEFAULT_TC_LINK_KEY not in keys


def test_coordinator_with_a_public_network_key_refused(kit: Kit) -> None:
    import zigpy.config as zc
    import zigpy.types as t
    from zigpy_znp.zigbee.application import ControllerApplication

    async def main() -> None:
        znp = ZnpResponder()
        znp.start()
        # a dongle that someone formed with Zigbee2MQTT's documented default key
        app = ControllerApplication({
            zc.CONF_DEVICE: {zc.CONF_DEVICE_PATH: znp.path},
            zc.CONF_NWK: {zc.CONF_NWK_CHANNEL: 15,
                          zc.CONF_NWK_KEY: t.KeyData(WELL_KNOWN_NWK_KEYS[0])},
            zc.CONF_DATABASE: None, zc.CONF_NWK_BACKUP_ENABLED: False})
        await app.startup(auto_form=True)
        await app.shutdown(db=False)
        assert znp.network_key() == WELL_KNOWN_NWK_KEYS[0]
        async with Site(kit.state, znp) as s:
            st = s.svc.status()
            assert st["state"] == "unavailable" and "publicly known" in st["error"]
            assert st["controller"]["state"] == "refused"
            assert [e.kind for e in s.events if e.kind.startswith("zigbee.")] == \
                ["zigbee.unavailable"]
        znp.close()

    run(main)


def test_backup_restored_onto_blank_coordinator_foreign_network_refused(kit: Kit) -> None:
    async def main() -> None:
        async with Site(kit.state) as s:
            first = s.svc.status()["controller"]
            key = s.svc.coordinator.network_key()  # type: ignore[union-attr]
        async with Site(kit.state) as s:  # the stick was replaced by a blank one
            assert s.svc.coordinator is not None, s.svc.error
            assert s.svc.coordinator.network_key() == key == s.znp.network_key()
            assert s.svc.status()["controller"]["pan_id"] == first["pan_id"]
        other = ZnpResponder()  # a stick carrying another gateway's network
        other.start()
        async with Site(Kit(kit.root / "other").state, other):
            pass
        async with Site(kit.state, other) as s:
            st = s.svc.status()
            assert st["state"] == "unavailable" and "another network" in st["error"]
        other.close()

    run(main)
