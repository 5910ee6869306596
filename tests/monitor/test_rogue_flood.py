"""1,000 bad-credential connections in a minute: rate-limited alerts, a temporary block, and a
valid device that keeps being served (real LanService on loopback, attacker on 127.0.0.2)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from firmware.core import frames
from firmware.core.rogue import RoguePipeline
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from tests.monitor.helpers import make, until

ATTACKER = "127.0.0.2"
TRIES = 1000


async def bad_login(port: int) -> None:
    """One connection presenting an identity the gateway does not know."""
    with contextlib.suppress(ConnectionError, OSError):
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(ATTACKER, 0))
        try:
            writer.write(frames.encode({"type": "hello", "id": "intruder", "interval": 1}))
            await writer.drain()
            await reader.read()
        finally:
            writer.close()


@pytest.mark.serial("a connection flood")
def test_flood_rate_limited_blocked_then_unblocked_valid_device_served(tmp_path: Path) -> None:
    pipeline = RoguePipeline(rate=0.1, burst=3, block_after=10, window=60.0, block_for=3.0,
                             summary_every=0.5)

    async def main() -> dict[str, Any]:
        gw, lan, mon, events = make(tmp_path, pipeline)
        await mon.start()
        await lan.start()
        agent = DeviceAgent("lock-1", kind="lock", interval=0.2, state={"locked": False})
        stop = asyncio.Event()
        session = asyncio.create_task(run_session(agent, "127.0.0.1", lan.port, stop=stop))
        await until(lambda: "lock-1" in lan.sessions, what="valid session")
        seq_before = agent.seq
        for _ in range(TRIES):
            await bad_login(lan.port)
        blocked_now = mon.status()["rogue"]["blocked"]
        # heartbeats keep flowing after the flood, and a command round-trips
        await until(lambda: agent.seq >= seq_before + 3, what="heartbeats")
        res = await lan.execute("lock-1", "lock")  # (unlock is ★★★: the platform's to sign)
        reported = [e for e in events if e.kind == "rogue.device" and e.target == ATTACKER]
        told = sum(e.params.get("suppressed_before", 0) for e in reported)

        def all_accounted() -> bool:
            summed = sum(e.params["count"] for e in events
                         if e.kind == "rogue.suppressed" and e.target == ATTACKER)
            return told + summed + len(reported) == TRIES

        await until(all_accounted, what="suppressed summaries")
        await until(lambda: any(e.kind == "rogue.unblocked" for e in events), what="unblock")
        # after the block expired the attacker is refused by authentication again
        refused_before = lan.refused
        await bad_login(lan.port)
        refused_after = lan.refused
        state = gw.liveness.devices["lock-1"].state
        stop.set()
        await session
        await lan.stop()
        await mon.stop()
        return {"events": events, "res": res, "blocked_now": blocked_now, "lan": lan,
                "state": state, "refused": (refused_before, refused_after)}

    out = asyncio.run(main())
    events, lan = out["events"], out["lan"]
    refused = [e for e in events if e.kind == "auth.refused"]
    # 10 until the block, 1 after it expired: the first at once, the rest in one counted record
    assert sum(e.params["count"] for e in refused) == 11
    assert len(refused) == 2 and refused[1].params["aggregated"] is True
    assert lan.blocked == TRIES - 10               # dropped before any hello work
    rogue_dev = [e for e in events if e.kind == "rogue.device"]
    assert len(rogue_dev) == 3                     # the burst; later ones only counted
    assert rogue_dev[0].severity == "alert" and rogue_dev[0].principal == "intruder"
    assert rogue_dev[0].params["path"] == "lan"
    assert "not registered" in rogue_dev[0].reason
    assert rogue_dev[0].params["evidence"]["peer"].startswith(ATTACKER + ":")
    blocked = [e for e in events if e.kind == "rogue.blocked"]
    assert len(blocked) == 1 and blocked[0].target == ATTACKER
    assert [b["source"] for b in out["blocked_now"]] == [ATTACKER]
    summaries = [e for e in events if e.kind == "rogue.suppressed"]
    assert summaries and "more suppressed" in summaries[0].reason
    unblocked = [e for e in events if e.kind == "rogue.unblocked"]
    assert unblocked[0].params["attempts_while_blocked"] == TRIES - 10
    assert out["refused"][1] == out["refused"][0] + 1
    assert out["res"]["ok"] is True and out["res"]["actual"] == {"locked": True}
    assert out["state"] == "online"
