"""A running sim gateway with its BLE and Zigbee demo devices, join windows, rogue joins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.common.installcode import DEFAULT_TC_LINK_KEY, link_key
from host_tools.demo import site_dir_for
from provisioning.devices import issue_device
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, start_gateway, stop_gateway, wait_for


def gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(gateway_cmd(*args), cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in doc.get("devices", [])}


def radios_online(doc: dict[str, Any]) -> bool:
    devs = by_id(doc)
    return all(devs.get(i, {}).get("state") == "online" for i in ("bedroom-window",
                                                                   "porch-motion"))


def test_ble_and_zigbee_demo_devices_join_window_and_rogue_alert(tmp_path: Path) -> None:
    require("mosquitto")  # the demo's platform broker (WAN command to the BLE device)
    state = tmp_path / "gw"
    proc = start_gateway(state)
    try:
        doc = wait_for(state, radios_online, timeout=30)
        devs = by_id(doc)
        ble, zb = devs["bedroom-window"], devs["porch-motion"]
        assert ble["transport"] == "ble" and ble["encrypted"] is True
        assert ble["mode"] == "noise-ik" and ble["pairing"] == "le-secure-connections"
        assert zb["transport"] == "zigbee" and zb["encrypted"] is True
        assert zb["mode"] == "install-code-link-key"
        assert doc["ble"]["sessions"] == 1 and doc["zigbee"]["devices"] == ["porch-motion"]
        # per radio: backend, library and version, controller state (the installed command)
        st = gateway("status", "--state-dir", str(state), "--json")
        radios = json.loads(st.stdout)["radios"]
        assert radios["ble"]["backend"] == "sim" and radios["ble"]["controller"]["state"] == "up"
        assert radios["zigbee"]["backend"] == "sim" and radios["zigbee"]["library"] == "zigpy"
        assert radios["zigbee"]["version"] and radios["zigbee"]["controller"]["state"] == "up"
        text = gateway("status", "--state-dir", str(state)).stdout
        assert "zigbee   sim via zigpy" in text and "ble      sim via in-process loopback" in text
        assert doc["control"]["socket"].endswith("run/control.sock")
        # a platform command over the WAN reaches the BLE device through the router
        broker = "mqtts://" + doc["wan"]["broker"].split("://")[-1]
        cmd = subprocess.run(
            [sys.executable, "-m", "host_tools.cli.main", "platform", "command", "--broker", broker,
             "--site", str(site_dir_for(state)), "--gateway", "sim-gateway",
             "--device", "bedroom-window", "--action", "disarm", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert cmd.returncode == 0, cmd.stderr
        res = json.loads(cmd.stdout)
        assert res["ok"] is True and res["actual"]["armed"] is False
        doc = wait_for(state, lambda d: by_id(d)["bedroom-window"].get("reported", {}).get(
            "armed") is False)
        # a mistyped device id is refused as what it is (it read as an ACL refusal: "acl, acl:")
        typo = subprocess.run(
            [sys.executable, "-m", "host_tools.cli.main", "platform", "command", "--broker", broker,
             "--site", str(site_dir_for(state)), "--gateway", "sim-gateway",
             "--device", "bedroom-windw", "--action", "disarm"],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert typo.returncode == 3, typo.stderr
        assert "unknown-device: no device 'bedroom-windw' on this gateway" in typo.stdout
        assert "acl" not in typo.stdout and "unknown-device, unknown-device" not in typo.stdout
        assert "waiting up to 15 s for its result" in typo.stderr  # not silent meanwhile
        # a rogue join while the gateway runs: refused and reported as an alert
        rogue = gateway("zigbee", "sim-join", "--state-dir", str(state), "--ieee",
                        "02:de:ad:be:ef:00:00:01", "--key", DEFAULT_TC_LINK_KEY.hex(), "--json")
        assert rogue.returncode == 2 and json.loads(rogue.stdout)["joined"] is False
        assert "default trust-centre key" in json.loads(rogue.stdout)["reason"]  # says why
        doc = wait_for(state, lambda d: any(e["kind"] == "rogue.zigbee"
                                            for e in d.get("events", [])))
        ev = [e for e in doc["events"] if e["kind"] == "rogue.zigbee"][0]
        assert ev["severity"] == "alert" and "reason" not in ev  # status: no free text
        shown = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "logs", "show",
                                str(state), "--json"], cwd=ROOT, capture_output=True,
                               text=True, timeout=60)
        rec = [r for r in json.loads(shown.stdout) if r.get("kind") == "rogue.zigbee"]
        assert rec and "default trust-centre key" in rec[0]["reason"]  # the access log has it
        # the installer adds a Zigbee device: window from the CLI, join with its install code
        site = Site(site_dir_for(state))
        creds_path = tmp_path / "new-plug.json"
        issue_device(site, "zigbee", "Mamori Labs", "SimMotion 1", "new-motion", creds_path)
        creds = json.loads(creds_path.read_text())
        permit = gateway("zigbee", "permit", "--state-dir", str(state), "--credentials",
                         str(creds_path), "--seconds", "30", "--interval", "5")
        assert permit.returncode == 0, permit.stderr
        assert "new-motion" in permit.stdout and creds["install_code"] not in permit.stdout
        joined = gateway("zigbee", "sim-join", "--state-dir", str(state), "--credentials",
                         str(creds_path))  # the device joins with its own install code
        assert joined.returncode == 0, joined.stderr
        doc = wait_for(state, lambda d: by_id(d).get("new-motion", {}).get("transport")
                       == "zigbee")
        # the window closed after one device: the same device again is a rogue
        again = gateway("zigbee", "sim-join", "--state-dir", str(state), "--ieee",
                        creds["ieee"], "--key",
                        link_key(bytes.fromhex(creds["install_code"])).hex())
        assert again.returncode == 2
        assert "no join window open" in again.stdout and "zigbee permit" in again.stdout
        # an IP credential file is not a Zigbee one
        bad = gateway("zigbee", "permit", "--state-dir", str(state), "--credentials",
                      str(site_dir_for(state) / "devices" / "hall-sensor.json"))
        assert bad.returncode == 1 and bad.stderr.startswith("error: ")
    finally:
        code, _ = stop_gateway(proc)
    err = proc.log.read_text()  # type: ignore[attr-defined]
    assert code == 0, err[-2000:]
    for secret in (creds["install_code"],):
        assert secret not in err


def test_permit_without_a_running_gateway_is_a_clear_error(tmp_path: Path) -> None:
    creds = tmp_path / "c.json"
    creds.write_text(json.dumps({"format": "mamori-device-credentials/1",
                                 "transport": "zigbee", "device_id": "plug",
                                 "install_code": "00" * 18, "ieee": "02:00:00:00:00:00:00:01",
                                 "record": {"signed": "by nobody"}}))
    proc = gateway("zigbee", "permit", "--state-dir", str(tmp_path), "--credentials",
                   str(creds))
    assert proc.returncode == 1 and "no gateway is running" in proc.stderr
