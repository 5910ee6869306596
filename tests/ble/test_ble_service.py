"""BLE devices in the gateway: sessions through the sim radio, liveness, commands, refusals."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from firmware.common.ble.stream import send_frames
from firmware.common.boards import load_board
from firmware.core import blelink, frames
from firmware.core.errors import AuthError, StateError
from firmware.core.events import Event
from firmware.core.refusals import CODES
from firmware.device.blerunner import run_ble_session
from firmware.device.credentials import three_star_guard
from firmware.device.portable.agent import DeviceAgent
from firmware.gateway.ble.channel import RECORD_KIND, device_connect
from firmware.gateway.ble.service import BleService, LoopbackBleRadio
from firmware.gateway.devices.router import DeviceRouter
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning import pki
from provisioning.installsecret import issue_install_secret
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("bles"))


def make_gw(state: Path) -> tuple[Gateway, list[Event]]:
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    gw.gateway_id = "gw1"
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    return gw, events


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.01)


def kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


async def started(kit: Kit, binding: DeviceBinding | None = None
                  ) -> tuple[Gateway, list[Event], BleService, LoopbackBleRadio]:
    gw, events = make_gw(kit.state)
    radio = LoopbackBleRadio()
    svc = BleService(gw, radio, hello_check=binding.check if binding else None,
                     handshake_timeout=2)
    await svc.start()
    return gw, events, svc, radio


def test_ble_device_online_with_link_evidence_and_command_round_trip(kit: Kit) -> None:
    creds = load(kit.device("win-1", transport="ble"))

    async def main() -> None:
        gw, events, svc, radio = await started(kit)
        agent = DeviceAgent("win-1", kind="sensor", interval=1.0, maker="Acme", model="Lock1",
                            transport="ble", guard=three_star_guard(creds, "gw1"))
        stop = asyncio.Event()
        task = asyncio.create_task(run_ble_session(agent, creds, radio.connect(), stop=stop))
        await until(lambda: agent.ready and agent.seq >= 1 and "win-1" in svc.links)
        dev = {d["id"]: d for d in gw.devices()}["win-1"]
        assert dev["transport"] == "ble" and dev["state"] == "online"
        assert dev["encrypted"] is True and dev["mode"] == "noise-ik"
        assert dev["pairing"] == "le-secure-connections" and dev["authenticated"] is True
        router = DeviceRouter(gw, {"ble": svc})
        unsigned = await router.execute("win-1", "disarm", {})  # ★★★: the device checks
        assert unsigned["ok"] is False and unsigned["refused"] == "unsigned"
        res = await router.execute("win-1", "disarm", {},
                                   envelope=kit.signed("win-1", "disarm"))
        assert res["ok"] is True and res["actual"]["armed"] is False
        assert agent.state["armed"] is False  # the device really did it
        bad = await router.execute("win-1", "fly", {})
        assert bad["ok"] is False and "unsupported" in bad["reason"]
        st = svc.status()
        assert st["sessions"] == 1 and st["encrypted"] is True and st["mode"] == "noise-ik"
        # the air carries ciphertext only
        gw_end = svc.links["win-1"].session.transport
        assert all(b"disarm" not in f for f in gw_end.sent)  # type: ignore[attr-defined]
        stop.set()
        await task
        await svc.stop()
        assert not kinds(events, "auth.refused")

    run(main)


def test_router_refuses_unknown_devices_and_unsupported_transports(kit: Kit) -> None:
    async def main() -> None:
        gw, _events, svc, _radio = await started(kit)
        router = DeviceRouter(gw, {"ble": svc, "zigbee": None})
        with pytest.raises(StateError, match="not known"):
            await router.execute("nobody", "arm")
        gw.register_device("zb-x", "zigbee", 10, 2)
        with pytest.raises(StateError, match="not supported"):
            await router.execute("zb-x", "arm")
        gw.register_device("ble-x", "ble", 10, 2)
        with pytest.raises(StateError, match="not connected"):
            await router.execute("ble-x", "arm")
        await svc.stop()

    run(main)


async def raw_session(kit: Kit, radio: LoopbackBleRadio, creds: dict, hello: dict
                      ) -> dict | None:
    """Handshake, send a hand-made hello, return the gateway's first answer (or None)."""
    session = await device_connect(creds, radio.connect(), timeout=2)
    await send_frames(session, frames.encode(hello))
    try:
        data = await session.recv(2)
    except TimeoutError:
        return None
    return dict(frames.FrameDecoder().feed(data)[0])


def test_hello_for_another_device_or_model_refused(kit: Kit) -> None:
    creds = load(kit.device("win-2", transport="ble"))

    async def main() -> None:
        _gw, events, svc, radio = await started(kit)
        for hello, why in (({"type": "hello", "id": "front-door"}, "does not match"),
                           ({"type": "hello", "id": "win-2", "model": "Other"}, "model"),
                           ({"type": "hb", "id": "win-2"}, "not a hello")):
            answer = await raw_session(kit, radio, creds, hello)
            assert answer is not None and answer["type"] == "refused"
            assert answer["reason"] == "authentication failed" and answer["code"] in CODES
            assert why in kinds(events, "auth.refused")[-1].reason
        assert svc.links == {} and svc.status()["refused"] == 3
        await svc.stop()

    run(main)


def test_legacy_pairing_through_the_radio_refused(kit: Kit) -> None:
    creds = load(kit.device("win-3", transport="ble"))

    async def main() -> None:
        _gw, events, svc, radio = await started(kit)
        with pytest.raises(AuthError):
            await device_connect(creds, radio.connect("legacy"), timeout=1)
        transport = radio.connect("legacy")
        del transport
        await until(lambda: len(kinds(events, "auth.refused")) >= 1)
        assert "LE Secure Connections" in kinds(events, "auth.refused")[0].reason
        await svc.stop()

    run(main)


def test_forged_and_replayed_frames_dropped_session_survives(kit: Kit) -> None:
    creds = load(kit.device("win-4", transport="ble"))

    async def main() -> None:
        gw, events, svc, radio = await started(kit)
        dev_t = radio.connect()
        session = await device_connect(creds, dev_t, timeout=2)
        await send_frames(session, frames.encode({"type": "hello", "id": "win-4",
                                                  "interval": 5}))
        welcome = frames.FrameDecoder().feed(await session.recv(2))[0]
        assert welcome["type"] == "welcome"
        await send_frames(session, frames.encode({"type": "hb", "seq": 1, "state": {"a": 1}}))
        replay = dev_t.sent[-1]
        await dev_t.write(replay)  # replayed data frame
        counter = session.send_cs.n
        bad = bytearray(session.send_cs.encrypt_with_ad(b"", frames.encode(
            {"type": "hb", "seq": 2, "state": {"a": 666}})))
        bad[-1] ^= 1
        await dev_t.write(blelink.encode(blelink.DATA, counter, bytes(bad)))  # forged
        await until(lambda: len(kinds(events, "ble.frame_rejected")) == 2)
        await send_frames(session, frames.encode({"type": "hb", "seq": 3, "state": {"a": 3}}))
        await until(lambda: gw.device_info["win-4"].get("reported") == {"a": 3})
        assert "win-4" in svc.links
        reasons = " ".join(e.reason for e in kinds(events, "ble.frame_rejected"))
        assert "replayed" in reasons and "authentication" in reasons
        await svc.stop()

    run(main)


def ticket_for(kit: Kit, dev_id: str, tmp: Path, gateway: str = "gw1") -> tuple[dict, str]:
    from firmware.device.cli import load_ticket

    out = tmp / ("%s-%s.ticket" % (dev_id, gateway))
    issue_install_secret(kit.site, gateway, dev_id, out, minutes=5)
    return load_ticket(out)


def test_record_demanding_binding_needs_a_ticket_once(kit: Kit, tmp_path: Path) -> None:
    creds = load(kit.device("win-5", transport="ble"))
    creds["record"] = pki.sign_doc(kit.site.ca_key(), RECORD_KIND,
                                   dict(creds["record"]["payload"], binding="ticket"))
    ticket, secret = ticket_for(kit, "win-5", tmp_path)

    async def main() -> None:
        _gw, events, svc, radio = await started(kit, DeviceBinding(kit.state))
        plain = DeviceAgent("win-5", interval=1.0, transport="ble", maker="Acme",
                            model="Lock1")
        with pytest.raises(AuthError):
            await run_ble_session(plain, creds, radio.connect(), heartbeats=1)
        assert "installation ticket" in kinds(events, "auth.refused")[-1].reason
        agent = DeviceAgent("win-5", interval=1.0, transport="ble", maker="Acme",
                            model="Lock1", ticket=ticket, secret=secret)
        assert await run_ble_session(agent, creds, radio.connect(), heartbeats=1) == 1
        assert agent.ticket is None  # redeemed; a reconnect needs no ticket now
        assert await run_ble_session(agent, creds, radio.connect(), heartbeats=1) == 1
        reuse = DeviceAgent("win-5", interval=1.0, transport="ble", maker="Acme",
                            model="Lock1", ticket=ticket, secret=secret)
        with pytest.raises(AuthError):
            await run_ble_session(reuse, creds, radio.connect(), heartbeats=1)
        assert "already used" in kinds(events, "auth.refused")[-1].reason
        for e in events:  # the secret never reaches an event
            assert secret not in repr(e.to_dict())
        await svc.stop()

    run(main)


def test_gateway_keys_never_in_frames(kit: Kit) -> None:
    creds = load(kit.device("win-6", transport="ble"))

    async def main() -> None:
        _gw, _events, svc, radio = await started(kit)
        dev_t = radio.connect()
        agent = DeviceAgent("win-6", interval=1.0, transport="ble", maker="Acme",
                            model="Lock1")
        assert await run_ble_session(agent, creds, dev_t, heartbeats=2) == 2
        static = base64.b64decode(creds["static_private"])
        assert all(static not in f for f in dev_t.sent)
        await svc.stop()

    run(main)
