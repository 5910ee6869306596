"""`mamori push` over the WAN, end to end: real Mosquitto (mutual TLS, per-gateway ACL), two
gateway processes, a release repository over loopback HTTP, signed update requests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from firmware.gateway.update import status
from firmware.gateway.update.agent import UpdateAgent
from firmware.gateway.wan import topics
from host_tools.platform.client import PlatformClient
from host_tools.platform.site import load_site
from host_tools.push.wan import new_request, sign_request
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, wait_for
from tests.ota.helpers import Env

GWS = ("gw-a", "gw-b")


def mamori(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "host_tools.cli.main", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def fleet(env: Env) -> Iterator[dict[str, Any]]:
    """A site, its broker and two running sim gateways that trust the release repository."""
    require("mosquitto")
    tmp = env.tmp
    site = Site.init(tmp / "site", 3, "Push fleet")
    p = tmp / "site" / "platform"
    broker = EmbeddedBroker(tmp / "broker", BrokerTls(
        cafile=p / "ca.pem", certfile=p / "server.pem", keyfile=p / "server.key"))
    broker.start()
    procs: dict[str, subprocess.Popen[str]] = {}
    states: dict[str, Path] = {}
    try:
        for gw in GWS:
            bundle = tmp / (gw + ".bundle")
            issue_gateway(site, "sim", gw, bundle)
            states[gw] = tmp / ("state-" + gw)
            UpdateAgent(states[gw], env.board).trust_root(env.repo.trusted_root())
            procs[gw] = subprocess.Popen(
                gateway_cmd("run", "--board", "sim", "--bundle", str(bundle), "--state-dir",
                            str(states[gw]), "--broker", broker.url),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for gw in GWS:
            wait_for(states[gw], lambda d: (d.get("wan") or {}).get("connected") is True,
                     timeout=60)
        gwfile = tmp / "gateways.txt"
        gwfile.write_text("\n".join(GWS) + "\n")
        yield {"site": tmp / "site", "broker": broker.url, "states": states,
               "gateways": gwfile, "procs": procs}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        broker.stop()


def _push(env: Env, fleet: dict[str, Any], *extra: str) -> subprocess.CompletedProcess[str]:
    return mamori("push", str(env.repo.path), "--board", "sim", "--gateways",
                  str(fleet["gateways"]), "--url", env.url, "--broker", fleet["broker"],
                  "--site", str(fleet["site"]), "--timeout", "60", "--json", *extra)


def test_push_over_wan(env: Env, fleet: dict[str, Any]) -> None:
    states = fleet["states"]
    # 1. Both gateways install the release.
    env.publish("1.0")
    r = _push(env, fleet)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert {g: o["result"] for g, o in rep["results"].items()} == {g: "installed" for g in GWS}
    for gw in GWS:
        assert status(states[gw])["version"] == "1.0"
    # Pushing again: already current counts as success.
    r = _push(env, fleet)
    assert r.returncode == 0 and {o["result"] for o in json.loads(r.stdout)[
        "results"].values()} == {"already-current"}

    # 2. A forged request (not signed by the site's command key) is refused by the gateway.
    env.publish("1.1")
    site = load_site(fleet["site"], need_signing_key=True)
    client = PlatformClient(site, fleet["broker"])
    client.connect()
    try:
        start = client.mark()
        forged = sign_request(new_request("gw-a", "sim", env.url), Ed25519PrivateKey.generate())
        client.publish(topics.down("gw-a", "update_req"), forged)
        # A genuine signature over a different URL: the URL is bound by the signature.
        swapped = dict(sign_request(new_request("gw-a", "sim", env.url), site.signing_key()),
                       url="http://127.0.0.1:9/evil")
        client.publish(topics.down("gw-a", "update_req"), swapped)
        unsigned = new_request("gw-a", "sim", env.url)
        client.publish(topics.down("gw-a", "update_req"), unsigned)
        found = client.wait_for(lambda m: m.get("type") == "update" and m["body"].get(
            "result") == "refused", 30, count=3, start=start)
    finally:
        client.close()
    reasons = {m["body"]["request_id"]: m["body"]["refused"] for m in found}
    assert reasons == {forged["id"]: "bad-signature", swapped["id"]: "bad-signature",
                       unsigned["id"]: "unsigned"}
    # The gateway reported all three refusals: it decided, and installed nothing.
    assert status(states["gw-a"])["version"] == "1.0"
    assert status(states["gw-a"])["state"] == "committed"

    # 3. A release that fails its health check: the first wave rolls back, the push halts.
    env.publish("1.2", health_rc=1)
    r = _push(env, fleet, "--waves", "50,100", "--max-failure-rate", "0")
    assert r.returncode == 2, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert rep["halted"] and "wave 1" in rep["reason"] and len(rep["waves"]) == 1
    (first,) = rep["results"]
    (skipped,) = rep["skipped"]
    assert rep["results"][first]["result"] == "rolled-back"
    assert status(states[first])["version"] == "1.0"
    assert status(states[first])["history"][-1]["action"] == "rolled_back"
    assert status(states[skipped])["version"] == "1.0"
    assert [h["action"] for h in status(states[skipped])["history"]] == ["installed"]
