"""Devices come back after a gateway restart: same LAN endpoint, known devices listed, the device
agent says what it is doing and why it was refused (real gateway and device processes)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.core import refusals
from firmware.core.errors import AuthError, StateError
from firmware.device.agentloop import jittered, reconnect
from tests.conftest import ROOT
from tests.gateway.helpers import gateway_cmd, online, status, stop_gateway, wait_for
from tests.provisioning.sitekit import Kit

DEVICES = ("door", "hall", "window")


def _device(creds: Path, port: int, log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "firmware.device.cli", "--credentials",
                             str(creds), "--gateway", "127.0.0.1:%d" % port, "--interval", "1"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True)


def _gateway(state: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(gateway_cmd("run", "--board", "sim", "--state-dir", str(state)),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _listening(doc: dict) -> bool:
    return bool(doc.get("gateway", {}).get("running")) and (doc.get("lan") or {}).get("port", 0) > 0


def test_devices_come_back_after_a_restart_and_known_ones_are_listed(tmp_path: Path) -> None:
    kit = Kit(tmp_path / "k")
    creds = {d: kit.device(d) for d in DEVICES}
    gw = _gateway(kit.state)
    agents: list[subprocess.Popen[str]] = []
    try:
        port = wait_for(kit.state, _listening)["lan"]["port"]
        agents = [_device(creds[d], port, tmp_path / (d + ".log")) for d in DEVICES]
        wait_for(kit.state, lambda doc: sorted(online(doc)) == sorted(DEVICES))
        code, err = stop_gateway(gw)
        assert code == 0, err

        gw = _gateway(kit.state)
        doc = wait_for(kit.state, _listening)
        assert doc["lan"]["port"] == port  # the endpoint the devices were told still holds
        assert {d["id"] for d in doc["devices"]} == set(DEVICES)  # listed before they return
        wait_for(kit.state, lambda doc: sorted(online(doc)) == sorted(DEVICES))
    finally:
        for a in agents:
            a.terminate()
            a.wait(timeout=20)
        stop_gateway(gw)
    log = (tmp_path / "door.log").read_text()
    assert "connecting to the gateway at 127.0.0.1:%d" % port in log
    assert "cannot reach the gateway" in log and "next attempt in" in log
    assert log.count("admitted device door") >= 2

    # Restarted with no device running: all three listed as known, then offline.
    gw = _gateway(kit.state)
    try:
        doc = wait_for(kit.state, _listening)
        listed = {d["id"]: d for d in doc["devices"]}
        assert set(listed) == set(DEVICES)
        assert all("known device" in d["reason"] or d["state"] == "offline"
                   for d in listed.values()), listed
        doc = wait_for(kit.state, lambda doc: sorted(
            d["id"] for d in doc["devices"] if d["state"] == "offline") == sorted(DEVICES))
        kinds = [e["kind"] for e in doc["events"]]
        assert kinds.count("device.offline") == 3
        text = subprocess.run(gateway_cmd("status", "--state-dir", str(kit.state)), cwd=ROOT,
                              capture_output=True, text=True).stdout
        assert "devices  3 (3 offline)" in text
    finally:
        code, err = stop_gateway(gw)
    assert code == 0, err
    assert status(kit.state)[0] == 3


def test_reconnect_backs_off_with_jitter_and_reports_why() -> None:
    said: list[tuple[str, str]] = []
    attempts = {"n": 0}
    stop = asyncio.Event()

    async def session() -> None:
        attempts["n"] += 1
        if attempts["n"] == 4:
            stop.set()
            raise AuthError("the gateway refused this device: "
                            + refusals.explain(refusals.TICKET_EXPIRED))
        raise StateError("cannot reach the gateway at 127.0.0.1:9 (Connection refused)")

    async def main() -> None:
        await reconnect(session, stop, backoff_max=0.04, report=lambda w, d: said.append((w, d)),
                        rand=lambda: 0.0)

    asyncio.run(main())
    waits = [float(d.split()[3]) for w, d in said if w == "retrying"]
    assert waits == pytest.approx([0.0, 0.0, 0.0], abs=0.06)
    assert [w for w, _ in said].count("unreachable") == 3
    assert said[-1][0] == "refused" and "installation ticket has expired" in said[-1][1]
    # Jitter: [delay/2, delay], never in lock-step.
    assert jittered(10.0, lambda: 0.0) == 5.0 and jittered(10.0, lambda: 1.0) == 10.0
