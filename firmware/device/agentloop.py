"""The device agent's session loop and reconnect loop, whatever the transport (CPython).

``firmware/device/runner.py`` (TCP/TLS) and ``firmware/device/blerunner.py`` (Noise IK over a
GATT link) open their link, then hand ``drive`` a read and a write function for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.core.errors import AuthError, MamoriError, StateError
from firmware.device.portable.agent import DeviceAgent

# read(timeout) -> bytes (b"" or None: nothing yet), TimeoutError when nothing came in time
Read = Callable[[float], Awaitable["bytes | None"]]
Write = Callable[[bytes], Awaitable[None]]
# report(what, detail): what the agent is doing and why, for the person installing the device.
# what: connecting | connected | refused | unreachable | closed | retrying
Report = Callable[[str, str], None]

BACKOFF_FIRST = 0.5


def silent(what: str, detail: str) -> None:
    """The default report: say nothing."""


def jittered(delay: float, rand: Callable[[], float] = random.random) -> float:
    """A delay in [delay/2, delay]: devices that lost the same gateway do not come back in step."""
    return delay * (0.5 + 0.5 * rand())


async def drive(agent: DeviceAgent, read: Read, write: Write, welcome_timeout: float,
                heartbeats: int | None = None, stop: asyncio.Event | None = None,
                report: Report = silent) -> int:
    """Send the hello, then heartbeat and serve commands over an open link.

    Returns the heartbeats sent; ends after `heartbeats` when given or when `stop` is set;
    StateError when the gateway does not welcome us within `welcome_timeout` seconds.
    """
    agent.phase = "connecting"
    before = agent.seq
    await write(agent.hello(time.monotonic()))
    told = False
    while True:
        if agent.ready and not told:
            told = True
            report("connected", "gateway %s admitted device %s; heartbeat every %g s"
                   % (agent.gateway or "?", agent.device_id, agent.interval))
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
                    backoff_max: float = 30.0, report: Report = silent,
                    rand: Callable[[], float] = random.random) -> None:
    """Run `session()` again and again with jittered exponential back-off until `stop` is set.

    A refusal (AuthError) needs a person to act, so it waits the longest; an unreachable or
    closed gateway is retried sooner, doubling up to `backoff_max`. Every step is reported.
    """
    delay = BACKOFF_FIRST
    while stop is None or not stop.is_set():
        report("connecting", "")
        try:
            await session()
            delay = BACKOFF_FIRST
            report("closed", "the gateway ended the session")
        except AuthError as exc:
            delay = backoff_max
            report("refused", str(exc))
        except MamoriError as exc:
            delay = min(delay * 2, backoff_max)
            report("unreachable", str(exc))
        if stop is not None and stop.is_set():
            break
        wait = jittered(delay, rand)
        report("retrying", "next attempt in %.1f s" % wait)
        if stop is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
        else:
            await asyncio.sleep(wait)
