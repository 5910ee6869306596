"""Asyncio driver for the portable device agent over a BLE Noise IK link (CPython).

The agent's frames (the LAN protocol) travel inside the AEAD channel, split into GATT-sized
messages; ``connect()`` opens a new GATT link (a bleak peripheral link on hardware, the sim
radio's loopback in the demo).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from firmware.common.ble.channel import BleTransport, device_connect
from firmware.common.ble.stream import recv, send_frames
from firmware.core.errors import AuthError
from firmware.device.agentloop import drive, reconnect
from firmware.device.portable.agent import DeviceAgent

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
    return await drive(agent, lambda wait: recv(session, wait),
                       lambda data: send_frames(session, data), WELCOME_TIMEOUT, heartbeats,
                       stop)


async def run_ble_forever(agent: DeviceAgent, creds: dict, connect: Callable[[], BleTransport],
                          stop: asyncio.Event | None = None, backoff_max: float = 30.0) -> None:
    """Keep a BLE session up, reconnecting with back-off until `stop` is set."""
    await reconnect(lambda: run_ble_session(agent, creds, connect(), stop=stop), stop,
                    backoff_max)
