"""Commanded vs actual through a real LAN session: lying and drifting devices raise anomalies."""

from __future__ import annotations

import asyncio
from pathlib import Path

from firmware.core.events import Event
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from tests.monitor.helpers import DeviceConn, make, until


def liar(action: str, params: dict, state: dict) -> tuple[bool, str]:
    """A broken lock: says it obeyed, stays locked."""
    return True, ""


def test_device_that_claims_success_but_stays_locked(tmp_path: Path) -> None:
    async def main() -> list[Event]:
        gw, lan, mon, events = make(tmp_path)
        await mon.start()
        await lan.start()
        agent = DeviceAgent("lock-1", kind="lock", interval=0.2, actuator=liar,
                            state={"locked": False})
        stop = asyncio.Event()
        task = asyncio.create_task(run_session(agent, "127.0.0.1", lan.port, stop=stop))
        await until(lambda: "lock-1" in lan.sessions)
        res = await lan.execute("lock-1", "lock")  # (unlock is ★★★: the platform's to sign)
        assert res["ok"] is True and res["actual"] == {"locked": False}
        stop.set()
        await task
        await lan.stop()
        await mon.stop()
        return events

    events = asyncio.run(main())
    anomalies = [e for e in events if e.kind == "device.anomaly"]
    assert len(anomalies) == 1 and anomalies[0].result == "result-mismatch"
    assert anomalies[0].params["diff"] == {"locked": {"commanded": True, "actual": False}}
    assert anomalies[0].severity == "alert"


def test_state_drift_after_command_then_manual_operation_resolves(tmp_path: Path) -> None:
    async def main() -> tuple[list[Event], dict]:
        gw, lan, mon, events = make(tmp_path, anomaly_grace=0.3)
        await mon.start()
        await lan.start()
        agent = DeviceAgent("lock-1", kind="lock", interval=0.1, state={"locked": False})
        dev = DeviceConn(agent)
        await dev.open(lan.port)
        await until(lambda: "lock-1" in lan.sessions)
        assert (await lan.execute("lock-1", "lock"))["ok"] is True
        checked = mon.anomaly.counts["checked"]
        # +2: the command's result (if not counted yet) and at least one heartbeat compared
        # with the command after the grace; none differs (a condition, not a fixed wait)
        await until(lambda: mon.anomaly.counts["checked"] >= checked + 2, what="checked")
        assert not [e for e in events if e.kind == "device.anomaly"]   # obeyed and stays
        agent.state["locked"] = False         # unlocked behind the gateway's back, unreported
        await until(lambda: any(e.kind == "device.anomaly" for e in events), what="drift")
        status = mon.status()["anomalies"]
        # the owner locks it by hand: that is reported and becomes the expectation
        dev.send(agent.local("lock", 0.0))
        await until(lambda: any(e.kind == "device.anomaly_resolved" for e in events))
        await dev.close()
        await lan.stop()
        await mon.stop()
        return events, status

    events, status = asyncio.run(main())
    drift = [e for e in events if e.kind == "device.anomaly"]
    assert len(drift) == 1 and drift[0].result == "drift"
    assert status["open"][0]["device"] == "lock-1"
    assert [e.kind for e in events if e.kind.startswith("device.anomaly")] == [
        "device.anomaly", "device.anomaly_resolved"]
