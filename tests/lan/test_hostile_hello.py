"""Hostile input on the LAN (issue 14 part 6, issue 23): every refusal is an auth.refused alert.

A device with a valid certificate (or one whose certificate names a malformed id) connects over
real mutual TLS on loopback and sends a hostile hello; the gateway must refuse it with the
reason, never admit it and never end the connection with an unexpected exception.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core import frames
from firmware.core.events import Event
from firmware.device.credentials import tls_context as client_context
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.provisioning.sitekit import Kit, load

BIG_FRAME = 256 * 1024


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("hostile"))


def hello(dev: str, **kw: object) -> dict:
    msg: dict = {"type": "hello", "id": dev, "transport": "ip", "maker": "Acme",
                 "model": "Lock1", "fw": "1.0.0", "interval": 1.0}
    msg.update(kw)
    return msg


def body_frame(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(4, "big") + raw


def serve(kit: Kit, scenario: Callable[[LanService, list[Event]], Awaitable[None]]
          ) -> list[Event]:
    """A mutual-TLS LAN service (frames up to 256 KiB) on loopback around the scenario."""
    events: list[Event] = []

    async def main() -> None:
        gw = Gateway(GatewayConfig("sim", kit.state), load_board("sim"))
        gw.bus.subscribe(events.append)
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=server_context(kit.state),
                         authorizer=DeviceAuthorizer(kit.state), max_frame=BIG_FRAME)
        await lan.start()
        try:
            await scenario(lan, events)
        finally:
            await lan.stop()

    asyncio.run(main())
    return events


async def send(lan: LanService, creds: dict, payload: bytes) -> bytes:
    """Connect with the device's TLS identity, send raw bytes, read until the gateway closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", lan.port,
                                                   ssl=client_context(creds))
    writer.write(payload)
    await writer.drain()
    got = b""
    try:
        while b'"welcome"' not in got:  # admitted: the session stays open, so stop here
            chunk = await asyncio.wait_for(reader.read(4096), 10)
            if not chunk:
                break  # refused: the gateway closed the connection
            got += chunk
        return got
    finally:
        writer.close()


async def until(pred: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def outcome(kit: Kit, creds: dict, payload: bytes) -> list[Event]:
    """Send one payload; the events once the connection is over (refused or admitted)."""

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await send(lan, creds, payload)
        await until(lambda: any(e.kind in ("auth.refused", "lan.error", "device.connected")
                                for e in events))

    return serve(kit, scenario)


def assert_refused(events: list[Event], *needles: str) -> Event:
    kinds = [e.kind for e in events]
    assert "device.connected" not in kinds and "lan.error" not in kinds, kinds
    refused = [e for e in events if e.kind == "auth.refused"]
    assert len(refused) == 1, kinds
    ev = refused[0]
    assert ev.severity == "alert" and ev.source == "lan"
    assert any(n in ev.reason for n in needles), ev.reason
    return ev


@pytest.mark.parametrize("interval, needle", [
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "Infinity"), ("1e999", "Infinity"),
    ("-5", "interval"), ("0", "interval"), ("1e300", "interval"), ('"abc"', "interval"),
    ("[1]", "interval"), ("9" * 4000, "digits"), ("true", "interval")])
def test_absurd_heartbeat_intervals_refused(kit: Kit, interval: str, needle: str) -> None:
    creds = load(kit.device("iv-%d" % (abs(hash(interval)) % 10 ** 8)))
    text = json.dumps(hello(creds["device_id"], interval=0)).replace('"interval": 0',
                                                                      '"interval": ' + interval)
    ev = assert_refused(outcome(kit, creds, body_frame(text)), needle)
    assert "hello" in ev.reason


def test_a_sane_interval_is_still_admitted(kit: Kit) -> None:
    creds = load(kit.device("iv-good"))
    events = outcome(kit, creds, frames.encode(hello("iv-good", interval=0.5)))
    assert "device.connected" in [e.kind for e in events]
    assert not [e for e in events if e.kind == "auth.refused"]


@pytest.mark.parametrize("cert_id", ["a/b", "../escape", "..", "x\ny"])
def test_certificate_naming_a_malformed_device_id_refused(kit: Kit, cert_id: str) -> None:
    creds = kit.forged_ip_creds(cert_id)  # signed by the site CA, bypassing provisioning
    # the hello agrees with the certificate: only the id syntax can refuse it
    ev = assert_refused(outcome(kit, creds, frames.encode(hello(cert_id))), "id")
    assert "syntax" in ev.reason or "valid id" in ev.reason
    # and with a well-formed hello id the certificate's own id is what is refused
    ev = assert_refused(outcome(kit, creds, frames.encode(hello("plain-id"))), "syntax")
    assert "certificate" in ev.reason


def test_sixty_thousand_deep_hello_refused(kit: Kit) -> None:
    creds = load(kit.device("deep-1"))
    deep = ('{"type": "hello", "id": "deep-1", "pad": ' + "[" * 60000 + "]" * 60000 + "}")
    ev = assert_refused(outcome(kit, creds, body_frame(deep)), "nested deeper")
    assert ev.principal == ""
    # unbalanced, in a default-size frame: refused the same way
    ev = assert_refused(outcome(kit, creds, body_frame("[" * 60000)), "nested deeper")


def test_firmware_version_with_non_ascii_digits_refused(kit: Kit) -> None:
    creds = load(kit.device("fw-1"))  # "²".isdigit() is True, int("²") raises
    assert_refused(outcome(kit, creds, frames.encode(hello("fw-1", fw="1.²"))), "fw")


def test_unknown_hello_field_refused_by_name(kit: Kit) -> None:
    creds = load(kit.device("extra-1"))
    ev = assert_refused(outcome(kit, creds, frames.encode(hello("extra-1", intervall=5))),
                        "intervall")
    assert "did you mean 'interval'" in ev.reason


def test_service_still_admits_after_a_hostile_burst(kit: Kit, tmp_path: Path) -> None:
    bad = load(kit.device("burst-bad"))
    good = load(kit.device("burst-good"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        for payload in (body_frame("[" * 1000), body_frame('{"type":"hello","id":"burst-bad",'
                                                           '"interval":NaN}'),
                        frames.encode(hello("burst-bad", interval=-1))):
            await send(lan, bad, payload)
        await until(lambda: len([e for e in events if e.kind == "auth.refused"]) == 3)
        await send(lan, good, frames.encode(hello("burst-good")))
        await until(lambda: any(e.kind == "device.connected" for e in events))

    events = serve(kit, scenario)
    assert "lan.error" not in [e.kind for e in events]
