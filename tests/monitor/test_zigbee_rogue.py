"""Zigbee through zigpy with the fake radio: a join outside the window is refused and reported
through the rogue pipeline (rate limited, repeat offender blocked)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.core.rogue import RoguePipeline
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.app import FakeRadio, MamoriZigbeeApp

CONFIG = {"device": {"path": "sim://zigbee"}, "database_path": None}
ROGUE_IEEE = "02:11:22:33:44:55:66:99"


def test_join_outside_window_refused_and_reported(tmp_path: Path) -> None:
    async def main() -> tuple[list[Event], list[bool], MonitorService, MamoriZigbeeApp]:
        gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        mon = MonitorService(gw, pipeline=RoguePipeline(burst=2, block_after=5))
        await mon.start()
        radio = FakeRadio()
        app = MamoriZigbeeApp(dict(CONFIG), radio, gw.emit)
        joined = [radio.device_joins(ROGUE_IEEE, 0x2000 + i, None) for i in range(20)]
        await mon.stop()
        return events, joined, mon, app

    events, joined, mon, app = asyncio.run(main())
    assert joined == [False] * 20 and len(app.devices) == 0
    assert len([e for e in events if e.kind == "rogue.zigbee"]) == 20     # raw refusals
    reported = [e for e in events if e.kind == "rogue.device"]
    assert len(reported) == 2                                             # rate limited
    assert reported[0].source == "zigbee" and reported[0].target == ROGUE_IEEE
    assert reported[0].params["path"] == "zigbee" and "no join window" in reported[0].reason
    assert [e.target for e in events if e.kind == "rogue.blocked"] == [ROGUE_IEEE]
    summary = mon.status()["rogue"]
    assert summary["by_path"] == {"zigbee": 20}
    assert summary["blocked"][0]["path"] == "zigbee"
