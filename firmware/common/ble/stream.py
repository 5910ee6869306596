"""Framed messages over an established BLE session: GATT-sized AEAD chunks, timed receives."""

from __future__ import annotations

import asyncio

from firmware.common.ble.channel import BleSession
from firmware.core import blelink

CHUNK = blelink.MAX_PAYLOAD - 16  # AEAD tag


async def send_frames(session: BleSession, data: bytes) -> None:
    """Send a byte stream of frames as GATT-sized AEAD messages (in order)."""
    for i in range(0, len(data), CHUNK):
        await session.send(data[i:i + CHUNK])


async def recv(session: BleSession, timeout: float) -> bytes:
    """session.recv with a timeout that never swallows a cancellation (asyncio.wait_for can)."""
    async with asyncio.timeout(timeout):
        return await session.recv(None)  # type: ignore[arg-type]  # None: no inner wait_for
