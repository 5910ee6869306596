"""What an admitted device sends after its hello, over real mutual TLS on loopback.

A device holding its own credential may still be hostile: its ``local`` action must be a short
token, its reported ``state`` small, its manual operations and stray results rate-limited, and
every refusal names the device.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import pytest

from firmware.core import frames
from firmware.core.events import Event
from firmware.device.credentials import tls_context as client_context
from firmware.device.portable.agent import DeviceAgent
from firmware.gateway.lan.service import LanService
from tests.lan.test_mutual_tls import run_gateway, wait_for
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("frames"))


@pytest.fixture(scope="module")
def spare(kit: Kit) -> dict[str, Any]:
    return load(kit.device("spare-sensor"))


class Device:
    """A raw device session: hello over mutual TLS, then any frames the test writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, lan: LanService, creds: dict[str, Any]) -> Device:
        reader, writer = await asyncio.open_connection("127.0.0.1", lan.port,
                                                       ssl=client_context(creds))
        agent = DeviceAgent(creds["device_id"], kind="lock", interval=5.0,
                            maker=creds.get("maker", ""), model=creds.get("model", ""))
        writer.write(agent.hello(0.0))
        head = await reader.readexactly(4)
        welcome = json.loads(await reader.readexactly(struct.unpack(">I", head)[0]))
        assert welcome["type"] == "welcome"
        await wait_for(lambda: creds["device_id"] in lan.sessions)
        return cls(reader, writer)

    async def send(self, *msgs: dict[str, Any]) -> None:
        for msg in msgs:
            self.writer.write(frames.encode(msg))
        await self.writer.drain()

    async def closed_by_gateway(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""

    def close(self) -> None:
        self.writer.close()


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


HOSTILE = ("\x1b]0;owned\x07\x1b[2J\r\n2026-12-03T06:30:00.000Z #42 critical gateway:gw unlock "
           "front-door-lock command.executed -> ok")


@pytest.mark.parametrize("bad", [
    {"type": "local", "action": HOSTILE, "state": {}},
    {"type": "local", "action": "=cmd|' /C calc'!A0", "state": {}},
    {"type": "local", "action": "x" * 33},
    {"type": "local", "state": {}},
    {"type": "hb", "seq": 1, "state": {"blob": "x" * 60000}},
    {"type": "hb", "seq": 1, "state": {"k%d" % i: i for i in range(64)}},
    {"type": "hb", "seq": 1, "state": {"a": {"b": {"c": {"d": 1}}}}},
    {"type": "local", "action": "unlock", "state": {"blob": "x" * 30000}},
], ids=["escapes", "formula", "long", "no-action", "big-state", "many-keys", "deep",
        "big-local"])
def test_malformed_session_message_refused_naming_the_device(kit: Kit, spare: dict[str, Any],
                                                            bad: dict[str, Any]) -> None:
    creds = spare

    async def scenario(lan: LanService, events: list[Event]) -> None:
        dev = await Device.open(lan, creds)
        await dev.send(bad)
        assert await dev.closed_by_gateway()
        dev.close()
        await wait_for(lambda: bool(kinds(events, "lan.protocol")))
        assert "reported" not in lan.gw.device_info["spare-sensor"]

    events = run_gateway(kit, scenario)
    assert not kinds(events, "device.local_operation")
    (ev,) = kinds(events, "lan.protocol")
    assert ev.principal == "spare-sensor" and "spare-sensor" in ev.reason


def test_unknown_message_type_names_the_device(kit: Kit) -> None:
    creds = load(kit.device("odd-sensor"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        dev = await Device.open(lan, creds)
        await dev.send({"type": "telemetry"})
        assert await dev.closed_by_gateway()
        dev.close()
        await wait_for(lambda: bool(kinds(events, "lan.protocol")))

    events = run_gateway(kit, scenario)
    (ev,) = kinds(events, "lan.protocol")
    assert ev.principal == "odd-sensor" and "unknown message type 'telemetry'" in ev.reason
    assert all(e.principal == "odd-sensor" for e in kinds(events, "lan.error"))


def test_local_operation_flood_is_bounded(kit: Kit) -> None:
    creds = load(kit.device("flood-lock"))
    sizes: list[int] = []

    async def scenario(lan: LanService, events: list[Event]) -> None:
        dev = await Device.open(lan, creds)
        state = {"note": "y" * 3000}
        await dev.send(*[{"type": "local", "action": "unlock", "state": state}] * 300,
                       {"type": "hb", "seq": 1, "state": state})
        await wait_for(lambda: lan.gw.device_info["flood-lock"].get("reported") == state)
        sizes.append(len(json.dumps(lan.gw.status(), default=str)))
        dev.close()

    events = run_gateway(kit, scenario)
    ops = kinds(events, "device.local_operation")
    assert 1 <= len(ops) <= 20  # the burst, then held back
    assert all(e.principal == "flood-lock" and e.action == "unlock" for e in ops)
    alerts = [e for e in kinds(events, "device.flood") if e.severity == "alert"]
    assert len(alerts) == 1 and alerts[0].principal == "flood-lock"
    (count,) = [e for e in kinds(events, "device.flood") if e.severity == "notice"]
    assert count.params["count"] == 300 - len(ops) and count.params["aggregated"]
    assert sizes[0] < 200_000


def test_unsolicited_results_are_recorded_and_bounded(kit: Kit) -> None:
    creds = load(kit.device("stray-lock"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        dev = await Device.open(lan, creds)
        stray = [{"type": "result", "cid": cid, "ok": True} for cid in ("1", 2, "999", "x")]
        await dev.send(*stray * 50, {"type": "hb", "seq": 1, "state": {"done": True}})
        await wait_for(lambda: bool(lan.gw.device_info["stray-lock"].get("reported")))
        dev.close()

    events = run_gateway(kit, scenario)
    stray = kinds(events, "device.unsolicited_result")
    assert 4 <= len(stray) <= 20
    assert all(e.principal == "stray-lock" and e.severity == "warning" for e in stray)
    assert "'999'" in stray[2].reason and "'x'" in stray[3].reason
    (count,) = [e for e in kinds(events, "device.flood") if e.severity == "notice"]
    assert count.params["count"] == 200 - len(stray)
