"""LAN service in-process: sessions, heartbeats, commands, refusals, silent devices."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core import frames
from firmware.core.events import Event
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from firmware.gateway.lan.service import LanService, registry_authorizer
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway

IDENT = {"lock-1": {"id": "lock-1", "kind": "lock", "transport": "ip", "maker": "M",
                    "model": "L", "interval": 0.2, "level": 3}}


def make(tmp_path: Path) -> tuple[Gateway, LanService, list[Event]]:
    gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    lan = LanService(gw, authorizer=registry_authorizer(gw, IDENT))
    return gw, lan, events


def test_command_round_trip_reports_actual_state(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        gw, lan, _ = make(tmp_path)
        await lan.start()
        agent = DeviceAgent("lock-1", kind="lock", interval=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(run_session(agent, "127.0.0.1", lan.port, stop=stop))
        while "lock-1" not in lan.sessions:
            await asyncio.sleep(0.02)
        agent.local("unlock", 0)
        res = await lan.execute("lock-1", "lock")
        # ★★★ for a device that declared it cannot verify the platform: refused, nothing sent
        refused = await lan.execute("lock-1", "unlock")
        assert refused["ok"] is False and refused["refused"] == "cannot-verify"
        assert agent.state == {"locked": True} and not agent.refusals
        stop.set()
        await task
        await lan.stop()
        return res

    res = asyncio.run(main())
    assert res["ok"] is True and res["actual"] == {"locked": True}


def test_unknown_device_and_garbage_refused_without_crash(tmp_path: Path) -> None:
    async def main() -> tuple[list[Event], int]:
        gw, lan, events = make(tmp_path)
        await lan.start()
        for payload in (frames.encode({"type": "hello", "id": "intruder"}),
                        b"\x00\x00\x00\x05hello",
                        b"\xff\xff\xff\xff",
                        frames.encode({"type": "hb", "seq": 1})):
            reader, writer = await asyncio.open_connection("127.0.0.1", lan.port)
            writer.write(payload)
            await writer.drain()
            await reader.read()  # the gateway closes the connection
            writer.close()
        # the service still serves a valid device afterwards
        agent = DeviceAgent("lock-1", kind="lock", interval=0.2)
        sent = await run_session(agent, "127.0.0.1", lan.port, heartbeats=2)
        await lan.stop()
        return events, sent

    events, sent = asyncio.run(main())
    refused = [e for e in events if e.kind == "auth.refused"]
    assert len(refused) == 4
    assert "not registered" in refused[0].reason
    assert "malformed" in refused[1].reason and "malformed" in refused[2].reason
    assert "not a hello" in refused[3].reason
    assert all(e.severity == "alert" for e in refused)
    assert sent == 2


def test_silent_device_goes_suspect_then_offline(tmp_path: Path) -> None:
    async def main() -> list[Event]:
        gw, lan, events = make(tmp_path)
        await lan.start()
        agent = DeviceAgent("lock-1", kind="lock", interval=0.2)
        await run_session(agent, "127.0.0.1", lan.port, heartbeats=2)
        await lan.stop()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3:
            for move in gw.liveness.tick(time.monotonic()):
                gw._liveness_event(move)
            await asyncio.sleep(0.05)
        return events

    kinds = [e.kind for e in asyncio.run(main()) if e.kind.startswith("device.")]
    assert kinds.index("device.online") < kinds.index("device.suspect") \
        < kinds.index("device.offline")


def test_command_to_absent_device_is_a_clear_error(tmp_path: Path) -> None:
    async def main() -> str:
        gw, lan, _ = make(tmp_path)
        await lan.start()
        try:
            await lan.execute("lock-1", "unlock")
        except Exception as exc:  # noqa: BLE001
            return str(exc)
        finally:
            await lan.stop()
        return ""

    assert "not connected" in asyncio.run(main())
