"""The device agent's session loop and reconnect loop, whatever the transport (CPython).

``firmware/device/runner.py`` (TCP/TLS) and ``firmware/device/blerunner.py`` (Noise IK over a
GATT link) open their link, then hand ``drive`` a read and a write function for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.core.errors import AuthError, MamoriError, StateError
from firmware.device.portable.agent import DeviceAgent

# read(timeout) -> bytes (b"" or None: nothing yet), TimeoutError when nothing came in time
Read = Callable[[float], Awaitable["bytes | None"]]
Write = Callable[[bytes], Awaitable[None]]


async def drive(agent: DeviceAgent, read: Read, write: Write, welcome_timeout: float,
                heartbeats: int | None = None, stop: asyncio.Event | None = None) -> int:
    """Send the hello, then heartbeat and serve commands over an open link.

    Returns the heartbeats sent; ends after `heartbeats` when given or when `stop` is set;
    StateError when the gateway does not welcome us within `welcome_timeout` seconds.
    """
    agent.phase = "connecting"
    before = agent.seq
    await write(agent.hello(time.monotonic()))
    while True:
        if stop is not None and stop.is_set():
            break
        if heartbeats is not None and agent.seq - before >= heartbeats:
            break
        now = time.monotonic()
        wait = max(0.05, min(1.0, agent.next_hb - now)) if agent.ready else welcome_timeout
        try:
            data = await read(wait)
        except TimeoutError:
            data = None
            if not agent.ready:
                raise StateError("gateway did not welcome us within %.0f s" % wait)
        out = agent.receive(data, time.monotonic()) if data else b""
        out += agent.poll(time.monotonic())
        if out:
            await write(out)
    return agent.seq - before


async def reconnect(session: Callable[[], Awaitable[Any]], stop: asyncio.Event | None = None,
                    backoff_max: float = 30.0) -> None:
    """Run `session()` again and again with exponential back-off until `stop` is set."""
    delay = 0.5
    while stop is None or not stop.is_set():
        try:
            await session()
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
