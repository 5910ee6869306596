"""A whole installation, as operators do it: site, bundle, broker, gateway, device, platform.

Real parts only: Mosquitto over mutual TLS, the gateway and device processes over loopback
mutual TLS, signed ★★★ commands, and the access log uploaded to the platform and verified there.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, wait_for


def mamori(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def house(tmp_path: Path) -> Iterator[dict[str, Path | str]]:
    require("mosquitto")
    site = Site.init(tmp_path / "site", 3, "E2E house")
    site.allow("Acme", "Lock 2", "ip")
    site.allow("Acme", "Sensor 1", "ip")
    issue_gateway(site, "sim", "gw-e2e", tmp_path / "gw.bundle",
                  acl=[{"principal": "platform", "device": "door",
                        "actions": ["lock", "unlock"]}])
    # devices are issued for their gateway (pinned to it): after the gateway
    issue_device(site, "ip", "Acme", "Lock 2", "door", tmp_path / "door.json")
    issue_device(site, "ip", "Acme", "Sensor 1", "hall", tmp_path / "hall.json")
    p = tmp_path / "site" / "platform"
    broker = EmbeddedBroker(tmp_path / "broker", BrokerTls(
        cafile=p / "ca.pem", certfile=p / "server.pem", keyfile=p / "server.key",
        crlfile=tmp_path / "site" / "ca" / "crl.pem"))
    broker.start()
    try:
        yield {"site": tmp_path / "site", "bundle": tmp_path / "gw.bundle",
               "door": tmp_path / "door.json", "hall": tmp_path / "hall.json",
               "state": tmp_path / "state", "inbox": tmp_path / "inbox", "url": broker.url}
    finally:
        broker.stop()


def test_installation_end_to_end(house: dict[str, Path | str]) -> None:
    site, url, state = str(house["site"]), str(house["url"]), Path(house["state"])
    # The platform's persistent session (and its subscription) exists before the gateway
    # speaks: a first watch that ends once subscribed; the broker keeps what comes meanwhile.
    first = mamori("platform", "watch", "--broker", url, "--site", site, "--session",
                   "e2e-platform", "--count", "0")
    assert first.returncode == 0, first.stderr
    watch = subprocess.Popen(
        [sys.executable, "-m", "host_tools.cli.main", "platform", "watch", "--broker", url,
         "--site", site, "--session", "e2e-platform", "--log-inbox", str(house["inbox"]),
         "--duration", "90", "--json"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--bundle", str(house["bundle"]),
                                      "--state-dir", str(state), "--broker", url),
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    door: subprocess.Popen[str] | None = None
    try:
        doc = wait_for(state, lambda d: (d.get("wan") or {}).get("connected") is True
                       and (d.get("lan") or {}).get("port", 0) > 0)
        assert doc["lan"]["tls"] is True and doc["devices"] == []
        endpoint = "%s:%d" % (doc["lan"]["host"], doc["lan"]["port"])

        once = subprocess.run([sys.executable, "-m", "firmware.device.cli", "--credentials",
                               str(house["hall"]), "--gateway", endpoint, "--once"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert once.returncode == 0, once.stderr
        assert "gw-e2e" in once.stdout

        door = subprocess.Popen([sys.executable, "-m", "firmware.device.cli", "--credentials",
                                 str(house["door"]), "--gateway", endpoint, "--kind", "lock",
                                 "--interval", "1"], cwd=ROOT, stderr=subprocess.PIPE,
                                text=True)
        wait_for(state, lambda d: any(x["id"] == "door" and x["state"] == "online"
                                      for x in d["devices"]))

        ok = mamori("platform", "command", "--broker", url, "--site", site, "--gateway",
                    "gw-e2e", "--device", "door", "--action", "unlock", "--json",
                    "--requested-by", "guard-7", "--approved-by", "callcentre-2")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        res = json.loads(ok.stdout)
        assert res["ok"] is True and res["actual"] == {"locked": False}

        denied = mamori("platform", "command", "--broker", url, "--site", site, "--gateway",
                        "gw-e2e", "--device", "hall", "--action", "unlock", "--json")
        assert denied.returncode != 0 and json.loads(denied.stdout.split("\n}\n")[0] + "\n}")[
            "refused"] == "acl"

        # The signed report comes back to the requester (it printed only "accepted" before).
        saved = state.parent / "remote-selftest.json"
        asked = mamori("platform", "selftest-request", "--broker", url, "--site", site,
                       "--gateway", "gw-e2e", "--out", str(saved), "--json", timeout=400)
        assert asked.returncode in (0, 2), asked.stderr  # a valid report: pass, or findings
        body = json.loads(asked.stdout)
        assert body["status"] == "done" and body["report"]["summary"]["verdict"] in (
            "pass", "fail") and "waiting up to" in asked.stderr
        from cryptography.hazmat.primitives import serialization

        from firmware.gateway.selftest.commissioning import signing_key

        pub = state.parent / "report-signing.pub.pem"
        pub.write_bytes(signing_key(state).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        checked = mamori("commissioning", "verify", str(saved), "--key", str(pub),
                         "--request-id", body["request_id"])
        assert checked.returncode == asked.returncode, checked.stderr
        replayed = mamori("commissioning", "verify", str(saved), "--key", str(pub),
                          "--request-id", "r-0000000000000000")
        assert replayed.returncode == 1 and "another request" in replayed.stderr
        wait_for(state, lambda d: "selftest.completed" in json.dumps(d["events"]), 60)
        # The platform asks for the log until its copy covers every head it holds (heads
        # arrive at once, segments on request).
        inbox = Path(house["inbox"]) / "gw-e2e"
        deadline = time.monotonic() + 40
        verify = None
        while time.monotonic() < deadline:
            assert mamori("platform", "log-request", "--broker", url, "--site", site,
                          "--gateway", "gw-e2e").returncode == 0
            time.sleep(0.4)  # between log requests
            verify = mamori("logs", "verify", str(inbox), "--json")
            if verify.returncode == 0:
                break
    finally:
        for proc in (door, gw):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
        watch.terminate()
        watched, _ = watch.communicate(timeout=30)
    assert gw.returncode == 0, gw.stderr[-3000:]
    reports = [m["body"] for m in map(json.loads, watched.splitlines())
               if m.get("type") == "selftest" and m["body"].get("status") == "done"]
    assert reports and reports[0]["signature"] and reports[0]["report"]["summary"]["verdict"]

    assert (inbox / "platform-keys.json").is_file()
    assert (inbox / "heads.jsonl").read_text().strip()
    assert verify is not None and verify.returncode == 0, verify.stdout + verify.stderr
    shown = mamori("logs", "show", str(inbox), "--device", "door", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "unlock" in shown.stdout and "guard-7" in shown.stdout
    # the escrowed keys never travel or rest in clear: the outbox holds only ciphertext
    keys = json.loads((inbox / "platform-keys.json").read_text())
    raw = b"".join(p.read_bytes() for p in (state / "wan").glob("*") if p.is_file())
    assert keys["data_key"].encode() not in raw
