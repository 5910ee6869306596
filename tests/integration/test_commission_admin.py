"""`mamori commission --admin URL`: the board is reached only over its admin API (HTTPS, pinned
to the site's CA and the gateway's identity); its bundle reaches it as a file."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, host_cmd, stop_gateway, wait_for
from tests.integration.test_commission_e2e import DEVICES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _progress(site: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((site / "commissioning" / "site-gw" / "progress.json")
                               .read_text()))
    except (OSError, ValueError):
        return {}


def test_commission_over_the_admin_api(tmp_path: Path) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    site, state, devfile = tmp_path / "site", tmp_path / "state", tmp_path / "devices.json"
    devfile.write_text(json.dumps({"devices": DEVICES}))
    port = _free_port()
    url = "https://127.0.0.1:%d" % port
    args = host_cmd("commission", str(site), "--board", "sim", "--admin", url, "--devices",
                    str(devfile), "--level", "3", "--tickets", "10", "--json")
    # Nothing answers at the URL yet: the bundle is issued, the install step says what to do.
    first = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 1
    steps = {s["step"]: s for s in json.loads(first.stdout)["steps"]}
    assert steps["bundle"]["state"] == "done" and steps["install"]["state"] == "failed"
    assert "put the bundle" in steps["install"]["error"]
    bundle = site / "gateways" / "site-gw.bundle"

    # The board boots with the bundle on it (as `mamori flash image --bundle` leaves it).
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--state-dir", str(state),
                                      "--bundle", str(bundle), "--admin-port", str(port)),
                          cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    agents: list[subprocess.Popen[str]] = []
    try:
        wait_for(state, lambda d: (d.get("admin") or {}).get("port") == port)
        second = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (_progress(site).get("facts") or {}).get("endpoint"):
            assert time.monotonic() < deadline and second.poll() is None, second.stderr
            time.sleep(0.2)
        endpoint = _progress(site)["facts"]["endpoint"]
        for d in DEVICES:  # each presents its one-time ticket (secret read from its file)
            ticket = site / "devices" / (d["id"] + ".ticket")
            assert ticket.with_name(ticket.name + ".secret.svg").is_file()
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "firmware.device.cli", "--credentials",
                 str(site / "devices" / (d["id"] + ".json")), "--gateway", endpoint,
                 "--interval", "2", "--ticket", str(ticket)], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True))
        out, err = second.communicate(timeout=280)
        assert second.returncode == 0, err[-3000:]
        doc = json.loads(out)
        assert doc["ok"] is True and doc["target"] == "admin API " + url
        record = json.loads(Path(doc["record"]).read_text())
        assert record["verdict"] == "pass" and record["counts"]["inconclusive"] == 0
        st = wait_for(state, lambda d: (d.get("admin") or {}).get("installer_credential")
                      == "changed")
        assert st["gateway"]["id"] == "site-gw"
        bound = json.loads((state / "binding" / "bound.json").read_text())
        assert sorted(bound) == sorted(d["id"] for d in DEVICES)  # tickets redeemed
        # The report the gateway kept is the one the installer's PC stored.
        kept = sorted((state / "installation" / "commissioning").glob("selftest-*.json"))
        assert json.loads(kept[-1].read_text())["report"]["generated_at"] == \
            record["commissioned_at"]
    finally:
        for a in agents:
            a.terminate()
            a.wait(timeout=20)
        code, err = stop_gateway(gw)
    assert code == 0, err
