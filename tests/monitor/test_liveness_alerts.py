"""Liveness through the gateway and the monitor with a controllable clock."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.runtime import gateway as runtime
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.core.portable import FakeClock


@pytest.fixture
def clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Gateway, MonitorService,
                                                                       FakeClock, list[Event]]:
    clock = FakeClock(1000.0)
    monkeypatch.setattr(runtime, "time", types.SimpleNamespace(monotonic=clock,
                                                               time=time.time))
    gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    mon = MonitorService(gw, clock=clock)
    gw.bus.subscribe(mon._on_event)
    return gw, mon, clock, events


def housekeeping(gw: Gateway, mon: MonitorService) -> None:
    """What the runtime's housekeeping and the monitor's loop do each round."""
    for move in gw.liveness.tick(runtime.time.monotonic()):
        gw._liveness_event(move)
    mon.tick()


def run_for(gw: Gateway, mon: MonitorService, clock: FakeClock, seconds: float,
            step: float = 1.0) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        housekeeping(gw, mon)


def test_silent_device_suspect_offline_online_with_latency(clocked: tuple) -> None:
    gw, mon, clock, events = clocked
    gw.register_device("lock-1", "ip", 10.0, 2)
    gw.device_seen("lock-1")
    t0 = clock()
    run_for(gw, mon, clock, 24.0)
    assert [e.kind for e in events if e.kind == "device.suspect"] == []
    run_for(gw, mon, clock, 1.0)                           # 25 s = 2.5 intervals
    suspect = [e for e in events if e.kind == "device.suspect"]
    assert len(suspect) == 1 and clock() - t0 == 25.0
    assert suspect[0].params["latency_s"] == 0.0 and suspect[0].severity == "warning"
    run_for(gw, mon, clock, 34.0)
    assert [e for e in events if e.kind == "device.offline"] == []
    run_for(gw, mon, clock, 3.0, step=3.0)                 # 62 s: noticed 2 s after 60 s
    offline = [e for e in events if e.kind == "device.offline"]
    assert len(offline) == 1 and offline[0].severity == "alert"
    assert offline[0].params["latency_s"] == 2.0
    clock.advance(1.0)
    gw.device_seen("lock-1")
    assert events[-1].kind == "device.online" and events[-1].params["from"] == "offline"
    det = mon.status()["detections"]
    assert [(d["to"], d["latency_s"]) for d in det] == [
        ("online", 0.0), ("suspect", 0.0), ("offline", 2.0), ("online", 0.0)]
    gw.services.append(mon)
    gw.write_status()
    doc = json.loads((gw.state_dir / runtime.STATUS_FILE).read_text())
    assert doc["devices"][0]["state"] == "online"
    assert doc["monitor"]["detections"][2]["latency_s"] == 2.0


def test_level3_device_tighter_and_radio_dead_collapses_alerts(clocked: tuple) -> None:
    gw, mon, clock, events = clocked
    gw.liveness.register_radio("zigbee", 5.0, clock())
    for i in range(5):
        gw.register_device("zb-%d" % i, "zigbee", 10.0, 3)
        gw.device_seen("zb-%d" % i)
    gw.register_device("lock-1", "ip", 10.0, 3)
    gw.device_seen("lock-1")
    run_for(gw, mon, clock, 15.0)                           # 1.5 intervals for level 3
    kinds = [(e.kind, e.target) for e in events if e.kind in ("device.suspect", "radio.dead")]
    assert ("device.suspect", "lock-1") in kinds
    assert ("radio.dead", "zigbee") in kinds                 # one alert for five devices
    assert not [k for k in kinds if k[1].startswith("zb-")]
    run_for(gw, mon, clock, 60.0)
    assert not [e for e in events if e.target.startswith("zb-") and e.severity == "alert"]
    radio = mon.status()["radios"][0]
    assert radio["state"] == "dead" and len(radio["devices"]) == 5
    assert all(d["state"] == "offline" for d in gw.devices() if d["id"].startswith("zb-"))
    gw.liveness.radio_seen("zigbee", clock.advance(1.0))
    mon.tick()
    assert events[-1].kind == "radio.alive"


def test_probed_device_kept_online_by_answers(clocked: tuple) -> None:
    import asyncio

    gw, mon, clock, events = clocked
    answers = {"plug-1": True}

    async def probe(dev_id: str) -> bool:
        return answers[dev_id]

    async def main() -> None:
        mon.probers["zigbee"] = probe
        gw.register_device("plug-1", "zigbee", 10.0, 2)
        mon.add_probe("plug-1", "zigbee", 10.0)
        for _ in range(100):
            clock.advance(1.0)
            housekeeping(gw, mon)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert gw.liveness.devices["plug-1"].state == "online"
        answers["plug-1"] = False
        for _ in range(100):
            clock.advance(1.0)
            housekeeping(gw, mon)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        assert gw.liveness.devices["plug-1"].state == "offline"
        assert mon.probes.entries["plug-1"]["misses"] >= 2     # backing off

    asyncio.run(main())
    assert [e.kind for e in events if e.target == "plug-1"] == [
        "device.online", "device.suspect", "device.offline"]
