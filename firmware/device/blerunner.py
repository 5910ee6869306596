"""Asyncio driver for the portable device agent over a BLE Noise IK link (CPython).

The agent's frames (the LAN protocol) travel inside the AEAD channel, split into GATT-sized
messages; ``connect()`` opens a new GATT link (a bleak peripheral link on hardware, the sim
radio's loopback in the demo).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from firmware.core.errors import AuthError, MamoriError, StateError
from firmware.device.portable.agent import DeviceAgent
from firmware.gateway.ble.channel import BleTransport, device_connect
from firmware.gateway.ble.service import recv, send_frames

WELCOME_TIMEOUT = 5.0


async def run_ble_session(agent: DeviceAgent, creds: dict, transport: BleTransport,
                          heartbeats: int | None = None,
                          stop: asyncio.Event | None = None) -> int:
    """Authenticate over `transport`, then heartbeat and serve commands.

    Returns the heartbeats sent; ends after `heartbeats` when given or when `stop` is set;
    AuthError when the gateway refuses us, StateError when it goes quiet before welcoming us.
    """
    try:
        session = await device_connect(creds, transport)
    except TimeoutError:
        raise AuthError("the gateway did not answer the BLE handshake")
    agent.phase = "connecting"
    before = agent.seq
    await send_frames(session, agent.hello(time.monotonic()))
    while True:
        if stop is not None and stop.is_set():
            break
        if heartbeats is not None and agent.seq - before >= heartbeats:
            break
        now = time.monotonic()
        wait = max(0.05, min(1.0, agent.next_hb - now)) if agent.ready else WELCOME_TIMEOUT
        try:
            data: bytes | None = await recv(session, wait)
        except TimeoutError:
            data = None
            if not agent.ready:
                raise StateError("gateway did not welcome us within %.0f s" % wait)
        out = agent.receive(data, time.monotonic()) if data else b""
        out += agent.poll(time.monotonic())
        if out:
            await send_frames(session, out)
    return agent.seq - before


async def run_ble_forever(agent: DeviceAgent, creds: dict, connect: Callable[[], BleTransport],
                          stop: asyncio.Event | None = None, backoff_max: float = 30.0) -> None:
    """Keep a BLE session up, reconnecting with back-off until `stop` is set."""
    delay = 0.5
    while stop is None or not stop.is_set():
        try:
            await run_ble_session(agent, creds, connect(), stop=stop)
            delay = 0.5
        except AuthError:
            delay = backoff_max
        except MamoriError:
            delay = min(delay * 2, backoff_max)
        if stop is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        else:
            await asyncio.sleep(delay)
