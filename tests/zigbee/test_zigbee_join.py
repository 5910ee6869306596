"""Zigbee through zigpy with a fake radio: install-code-only joins, rogue joins reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import zigpy.config as zconf

from firmware.common.installcode import DEFAULT_TC_LINK_KEY, link_key
from firmware.core.errors import ConfigError, PolicyError
from firmware.core.events import Event
from firmware.gateway.zigbee.app import FakeRadio, MamoriZigbeeApp
from tests.provisioning.sitekit import Kit, load

CONFIG = {"device": {"path": "sim://zigbee"}, "database_path": None}


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("zb"))


def rogues(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "rogue.zigbee"]


def test_only_the_windowed_device_with_its_install_code_joins(kit: Kit) -> None:
    creds = load(kit.device("zb-ok", transport="zigbee"))
    key = link_key(bytes.fromhex(creds["install_code"]))

    async def main() -> None:
        events: list[Event] = []
        radio = FakeRadio()
        app = MamoriZigbeeApp(dict(CONFIG), radio, events.append)
        assert bytes(app.config[zconf.CONF_NWK][zconf.CONF_NWK_TC_LINK_KEY]) != \
            DEFAULT_TC_LINK_KEY
        # before any window: refused
        assert not radio.device_joins(creds["ieee"], 0x1001, key)
        with pytest.raises(PolicyError):
            await app.permit(60)
        await app.open_join_window(creds, seconds=60)
        assert radio.link_keys[creds["ieee"]] == key
        # during the window: default key, wrong key, another device are all refused
        assert not radio.device_joins(creds["ieee"], 0x1001, DEFAULT_TC_LINK_KEY)
        assert not radio.device_joins(creds["ieee"], 0x1001, b"\x00" * 16)
        assert not radio.device_joins("02:11:22:33:44:55:66:77", 0x1002, key)
        assert radio.device_joins(creds["ieee"], 0x1001, key)
        assert any(str(d).lower() == creds["ieee"] for d in app.devices)
        # the window closes after one device
        assert not radio.device_joins("02:11:22:33:44:55:66:78", 0x1003, None)
        r = rogues(events)
        assert len(r) == 5 and all(e.severity == "alert" for e in r)
        reasons = " | ".join(e.reason for e in r)
        assert "default trust-centre key" in reasons and "no join window" in reasons
        assert "not the one being installed" in reasons and "install-code key" in reasons
        assert len(app.devices) == 1

    asyncio.run(main())


def test_window_expires(kit: Kit) -> None:
    creds = load(kit.device("zb-late", transport="zigbee"))
    key = link_key(bytes.fromhex(creds["install_code"]))

    async def main() -> None:
        events: list[Event] = []
        app = MamoriZigbeeApp(dict(CONFIG), FakeRadio(), events.append)
        now = [0.0]
        app.policy.clock = lambda: now[0]
        await app.open_join_window(creds, seconds=30)
        now[0] = 31.0
        assert not app.radio.device_joins(creds["ieee"], 0x2001, key)
        assert "closed" in rogues(events)[0].reason
        with pytest.raises(PolicyError):
            await app.open_join_window(creds, seconds=3600)

    asyncio.run(main())


def test_default_trust_centre_key_configuration_refused(tmp_path: Path) -> None:
    cfg = dict(CONFIG, network={"tc_link_key": DEFAULT_TC_LINK_KEY.hex(":")})
    with pytest.raises(ConfigError):
        MamoriZigbeeApp(cfg, FakeRadio(), lambda e: None)
