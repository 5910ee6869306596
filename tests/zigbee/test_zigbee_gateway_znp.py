"""The installed gateway on a board whose Zigbee coordinator is a ZNP stick (the pty responder):
`mamori-gateway status --json` names backend, library, version and controller state; the
installer's `zigbee permit` installs the device's key on the stick; a rogue rejoin is alerted
and asked to leave. Driven as an installer does, through the commands."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boards import boards_dir
from firmware.common.installcode import link_key
from host_tools.demo import site_dir_for
from provisioning.devices import issue_device
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import (
    gateway_cmd,
    host_cmd,
    spawn_gateway,
    stop_gateway,
    wait_for,
    wait_logged,
)
from tests.zigbee.znp_responder import ZnpResponder

ROGUE = "02:11:22:33:44:55:77:01"


class StickThread:
    """The ZNP responder served by its own event loop in a thread (the gateway is a process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.znp = ZnpResponder()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> StickThread:
        self.thread.start()
        self.call(self.znp.start)
        return self

    def __exit__(self, *exc: object) -> None:
        self.call(self.znp.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        async def run() -> Any:
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=5)


@pytest.fixture()
def stick() -> Iterator[StickThread]:
    with StickThread() as s:
        yield s


def board_dir(tmp_path: Path, port: str) -> Path:
    """A copy of the profiles where the sim board's coordinator is a ZNP stick on PORT."""
    d = tmp_path / "boards"
    d.mkdir()
    for p in boards_dir().glob("*.toml"):
        text = p.read_text()
        if p.name == "sim.toml":
            text = text.replace('radio_type = "sim"', 'radio_type = "znp"').replace(
                'serial_port = "sim://zigbee"', 'serial_port = "%s"\nbaudrate = 115200' % port)
        (d / p.name).write_text(text)
    return d


def test_gateway_runs_a_znp_coordinator_from_its_board_profile(
        tmp_path: Path, stick: StickThread, monkeypatch: pytest.MonkeyPatch) -> None:
    require("mosquitto")  # the sim demo's platform broker
    monkeypatch.setenv("MAMORI_BOARDS_DIR", str(board_dir(tmp_path, stick.znp.path)))
    env = dict(os.environ)
    state = tmp_path / "gw"

    def gateway(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(gateway_cmd(*args), cwd=ROOT, capture_output=True, text=True,
                              timeout=60, env=env)

    proc = spawn_gateway(host_cmd("demo", "--state-dir", str(state)), state, env=env)
    try:
        doc = wait_for(state, lambda d: ((d.get("radios") or {}).get("zigbee") or {}).get(
            "controller", {}).get("state") == "up", timeout=30)
        zb = doc["radios"]["zigbee"]
        assert zb["backend"] == "znp" and zb["library"] == "zigpy-znp" and zb["version"]
        assert zb["controller"]["model"] == "CC2652"
        assert zb["controller"]["port"] == stick.znp.path
        text = gateway("status", "--state-dir", str(state)).stdout
        assert "zigbee   znp via zigpy-znp" in text and "controller up" in text
        # the installer opens the window for one device: its key goes to the stick
        creds_path = tmp_path / "plug.json"
        issue_device(Site(site_dir_for(state)), "zigbee", "Mamori Labs", "SimMotion 1",
                     "plug-1", creds_path)
        creds = json.loads(creds_path.read_text())
        key = link_key(bytes.fromhex(creds["install_code"]))
        permit = gateway("zigbee", "permit", "--state-dir", str(state), "--credentials",
                         str(creds_path), "--seconds", "30", "--json")
        assert permit.returncode == 0, permit.stderr
        assert stick.call(lambda: stick.znp.state.install_keys) == {creds["ieee"]: key}
        # zigpy-znp sends the key, then permit-join: the window opens a moment after the key
        assert asyncio.run(_poll(lambda: stick.call(stick.znp.permitting)))
        stick.call(stick.znp.rejoin, ROGUE, 0x3101)
        assert stick.call(stick.znp.join, creds["ieee"], 0x4101, key)
        wait_for(state, lambda d: any(x["id"] == "plug-1" for x in d["devices"]), timeout=30)
        logged = wait_logged(proc, lambda evs: any(
            e["kind"] == "rogue.zigbee" and e.get("target") == ROGUE for e in evs))
        rogue = [e for e in logged if e["kind"] == "rogue.zigbee"][0]
        assert rogue["severity"] == "alert" and "not the one being installed" in rogue["reason"]
        assert asyncio.run(_poll(lambda: ROGUE in stick.call(stick.znp.leave_requests)))
    finally:
        stop_gateway(proc)


async def _poll(cond: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True
