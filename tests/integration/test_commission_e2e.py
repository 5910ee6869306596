"""`mamori commission` end to end on the sim board: a blank board, three devices, a step that
fails, a run killed midway, a resumed run that ends with a signed all-pass record.

Real processes throughout: the blank gateway (`mamori-gateway run`), the installer's command,
three device agents (`mamori-device`) over loopback mutual TLS.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, host_cmd, online, stop_gateway, wait_for

DEVICES = [
    {"id": "front-door", "maker": "Acme", "model": "Lock 2", "transport": "ip",
     "actions": ["lock", "unlock"]},
    {"id": "hall-sensor", "maker": "Acme", "model": "Sensor 1", "transport": "ip"},
    {"id": "living-shutter", "maker": "Acme", "model": "Shutter 1", "transport": "ip",
     "actions": ["open", "close"]},
]


def _progress(site: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((site / "commissioning" / "site-gw" / "progress.json")
                               .read_text()))
    except (OSError, ValueError):
        return {}


def _until(cond: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("condition not met within %.0f s" % timeout)


def _blank_board(tmp_path: Path, devices: dict[str, Any]
                 ) -> tuple[Path, Path, list[str], subprocess.Popen[str]]:
    """The site folder, a blank sim gateway running on its state dir, and the commission line."""
    site, state, devfile = tmp_path / "site", tmp_path / "state", tmp_path / "devices.json"
    devfile.write_text(json.dumps(devices))
    args = host_cmd("commission", str(site), "--board", "sim", "--target", str(state),
                    "--devices", str(devfile), "--level", "3", "--json")
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--state-dir", str(state)),
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    return site, state, args, gw


def _power_on(site: Path, ids: list[str]) -> list[subprocess.Popen[str]]:
    """The IP devices' agents, as the installer starts them (endpoint as commission found it)."""
    endpoint = _progress(site)["facts"]["endpoint"]
    return [subprocess.Popen([sys.executable, "-m", "firmware.device.cli", "--credentials",
                              str(site / "devices" / (i + ".json")), "--gateway", endpoint,
                              "--interval", "2"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True) for i in ids]


def _stop(agents: list[subprocess.Popen[str]], gw: subprocess.Popen[str]) -> None:
    for a in agents:
        a.terminate()
        a.wait(timeout=20)
    code, err = stop_gateway(gw)
    assert code == 0, err


def test_commission_a_blank_sim_board_with_three_devices_and_a_resume(tmp_path: Path) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    started = time.monotonic()
    site, state, args, gw = _blank_board(tmp_path, {"devices": DEVICES})
    agents: list[subprocess.Popen[str]] = []
    try:
        wait_for(state, lambda d: d.get("gateway", {}).get("running") is True)  # blank

        # 1. No device is powered on: the wait gives up, nothing is signed, exit 1.
        first = subprocess.run(args + ["--timeout", "4"], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
        doc = json.loads(first.stdout)
        assert first.returncode == 1 and doc["ok"] is False and doc["record"] is None
        steps = {s["step"]: s["state"] for s in doc["steps"]}
        assert steps["credential"] == "done" and steps["online"] == "failed"
        assert steps["selftest"] == "pending"
        assert "waiting for front-door, hall-sensor, living-shutter" in first.stderr
        assert "run the same command again" in first.stderr

        # 2. Killed in the middle of a step (SIGKILL while it waits for the devices).
        second = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _until(lambda: _progress(site).get("runs") == 2
               and _progress(site)["steps"].get("online", {}).get("state") == "running")
        second.send_signal(signal.SIGKILL)
        second.communicate(timeout=30)
        assert _progress(site)["steps"]["online"]["state"] == "running"

        # 3. The installer powers on the devices and runs the same command again.
        agents += _power_on(site, [d["id"] for d in DEVICES])
        third = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=280)
        assert third.returncode == 0, third.stderr[-3000:]
        doc = json.loads(third.stdout)
        assert doc["ok"] is True and doc["runs"] == 3
        assert [d["id"] for d in doc["devices"]] == [d["id"] for d in DEVICES]
        # site, bundle, devices, install, credential: not done again (waits always re-check)
        assert third.stderr.count("(done before)") == 5
        elapsed = time.monotonic() - started

        # The record: stored with the site, signed by the gateway, all pass, verifiable here.
        record = json.loads(Path(doc["record"]).read_text())
        assert record["verdict"] == "pass" and record["counts"]["fail"] == 0
        assert record["counts"]["inconclusive"] == 0 and record["service_level"] == 3
        cdir = Path(doc["record"]).parent
        verify = subprocess.run(host_cmd("commissioning", "verify", str(cdir / record["report"]),
                                         "--key", str(cdir / record["public_key"])),
                                cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr
        # The first-use change happened; the new credential stays beside the bundle, unprinted.
        cred = Path(doc["credential_file"])
        assert oct(cred.stat().st_mode & 0o777) == oct(0o600)
        secret = cred.read_text().strip().splitlines()[-1]
        for out in (first, third):
            assert secret not in out.stdout + out.stderr
        st = wait_for(state, lambda d: len(online(d)) == 3)
        assert st["gateway"]["id"] == "site-gw" and st["admin"]["installer_credential"] != \
            "initial"
        print("\ncommissioned: 3 devices, %d commission runs, %.1f s in all (incl. a 4 s "
              "time-out and a killed run)" % (doc["runs"], elapsed))
    finally:
        _stop(agents, gw)


def test_a_bundle_landing_beside_a_blank_gateway_that_is_starting_is_picked_up(
        tmp_path: Path) -> None:
    from firmware.gateway.identity.install import install_bundle

    site, devfile = tmp_path / "site", tmp_path / "devices.json"
    devfile.write_text(json.dumps({"devices": DEVICES}))

    def commission(target: Path, timeout: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(host_cmd("commission", str(site), "--board", "sim", "--target",
                                       str(target), "--devices", str(devfile), "--timeout",
                                       timeout, "--json"),
                              cwd=ROOT, capture_output=True, text=True, timeout=240)

    commission(tmp_path / "elsewhere", "1")  # the site, bundle and credentials exist now
    (site / "commissioning" / "site-gw" / "progress.json").unlink()
    state = tmp_path / "state"
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--state-dir", str(state)),
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    try:
        wait_for(state, lambda d: d.get("gateway", {}).get("running") is True)
        # The race: the bundle lands in the directory of a gateway that already started blank.
        install_bundle(state, site / "gateways" / "site-gw.bundle")
        run = commission(state, "6")
        steps = {s["step"]: s["state"] for s in json.loads(run.stdout)["steps"]}
        assert steps["gateway"] == "done" and steps["online"] == "failed", run.stderr
        assert "the blank gateway restarts with it" in run.stderr
    finally:
        code, err = stop_gateway(gw)
    assert code == 0, err


def test_the_readme_devices_file_with_a_zigbee_device_by_the_printed_commands(
        tmp_path: Path) -> None:
    """The README's devices file (two IP devices and a Zigbee one): every device gets in by the
    commands `mamori commission` prints (it once said only "pair porch (zigbee) with its
    credential file", and the Zigbee device had no way in)."""
    import re
    import shlex

    require("netns")
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index('{"devices": [\n  {"id": "front-door"'):]
    devices = json.loads(block[:block.index("\n```")])
    site, state, args, gw = _blank_board(tmp_path, devices)
    agents: list[subprocess.Popen[str]] = []
    try:
        wait_for(state, lambda d: d.get("gateway", {}).get("running") is True)
        first = subprocess.run(args + ["--timeout", "2"], cwd=ROOT, capture_output=True,
                               text=True, timeout=240)
        assert first.returncode == 1, first.stderr[-2000:]
        printed = re.findall(r"`(mamori-gateway zigbee [^`]+)`", first.stderr)
        assert [c.split()[2] for c in printed] == ["permit", "sim-join"], first.stderr[-2000:]
        for line in printed:  # as the installer types them
            argv = shlex.split(line)
            done = subprocess.run(gateway_cmd(*argv[1:]), cwd=ROOT, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, (line, done.stdout, done.stderr)
        agents += _power_on(site, [d["id"] for d in devices["devices"]
                                   if d["transport"] == "ip"])
        again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=280)
        assert again.returncode == 0, again.stderr[-3000:]
        assert [d["id"] for d in json.loads(again.stdout)["devices"]] == \
            [d["id"] for d in devices["devices"]]
        # The record itself verifies (it names its report; "malformed" before), and a wrong
        # key file says what file is wanted, not a Python exception name.
        record = Path(json.loads(again.stdout)["record"])
        key = record.parent / "report-signing.pub.pem"
        ok = subprocess.run(host_cmd("commissioning", "verify", str(record), "--key", str(key)),
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and "signature valid" in ok.stdout, ok.stderr
        bad = subprocess.run(host_cmd("commissioning", "verify", str(record), "--key",
                                      str(record)), cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert bad.returncode == 1 and "is not a PEM public key" in bad.stderr
        assert "report-signing.pub.pem" in bad.stderr and "ValueError" not in bad.stderr
    finally:
        _stop(agents, gw)
