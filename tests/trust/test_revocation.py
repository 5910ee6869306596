"""Revocation reaches a running gateway and cuts the device off (issue 14, part 1).

Real processes throughout: `mamori provision revoke`, `mamori-gateway run`, `mamori-device`,
`mamori-gateway crl install` (offline and through the control socket) and, over a real
Mosquitto, `mamori platform revocations`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from firmware.gateway.identity.install import install_bundle
from host_tools.platform.client import PlatformClient
from host_tools.platform.site import load_site
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.gateway.helpers import stop_gateway, wait_for, wait_logged
from tests.trust.house import (
    House,
    device,
    device_cmd,
    events,
    gateway,
    make_house,
    mamori,
    start_gateway,
)


@pytest.fixture
def house(tmp_path: Path) -> House:
    h = make_house(tmp_path)
    h.device("door")
    h.device("lost", model="Sensor 1")
    return h


def test_revoke_prints_the_growing_crl_number(house: House) -> None:
    before = house.site.crl().number
    out = mamori("provision", "revoke", str(house.site.root), "--id", "lost", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["crl_number"] == before + 1 == house.site.crl().number
    text = mamori("provision", "revoke", str(house.site.root), "--id", "door")
    assert text.returncode == 0 and "CRL number %d" % (before + 2) in text.stdout
    again = mamori("provision", "revoke", str(house.site.root), "--id", "door")
    assert again.returncode == 1 and "already revoked" in again.stderr
    assert house.site.crl().number == before + 2  # a refused revoke signs nothing


def test_open_session_closed_at_install_and_no_way_back(house: House) -> None:
    proc, endpoint = start_gateway(house.state, house.bundles["gw-1"])
    devices = [subprocess.Popen(device_cmd(house.creds[d], endpoint, "--interval", "0.5"),
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for d in ("door", "lost")]
    try:
        wait_for(house.state, lambda d: device(d, "door").get("state") == "online"
                 and device(d, "lost").get("state") == "online")
        assert mamori("provision", "revoke", str(house.site.root), "--id", "lost",
                      "--reason", "stolen").returncode == 0
        started = time.monotonic()
        res = gateway("crl", "install", "--state-dir", str(house.state),
                      str(house.site.root / "ca" / "crl.pem"), "--json")
        answered = time.monotonic() - started
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        # the session is closed as part of the install, before the answer comes back
        assert doc["into"] == "running gateway" and doc["status"] == "installed"
        assert doc["revoked_devices"] == ["lost"] and doc["newly_revoked"] == 1
        st = wait_for(house.state, lambda d: device(d, "lost").get("state") == "removed"
                      and bool(events(d, "auth.refused")), 30)
        lost = device(st, "lost")
        assert lost["reason"] == "revoked"
        revoked = events(st, "device.revoked")
        assert revoked and revoked[0]["target"] == "lost" and revoked[0]["severity"] == "alert"
        closed = [e for e in events(st, "device.session_closed") if e["target"] == "lost"]
        installed = events(st, "crl.installed")
        assert closed and installed and closed[0]["ts"] >= installed[0]["ts"]
        # it comes back on its own (reconnect loop) and is refused at admission
        refused = wait_logged(proc, lambda evs: any(e["kind"] == "auth.refused" for e in evs))
        assert all("revoked" in e["reason"] for e in refused if e["kind"] == "auth.refused")
        assert device(st, "door")["state"] == "online"  # the others keep working
        assert st["crl"]["number"] == house.site.crl().number and st["crl"]["state"] == "fresh"
        print("crl install answered in %.3f s; session closed %.3f s after the list was "
              "written" % (answered, closed[0]["ts"] - installed[0]["ts"]))
        # the access log has it too
        log = mamori("logs", "show", str(house.state), "--device", "lost", "--json")
        assert log.returncode == 0 and "device.revoked" in log.stdout
    finally:
        for p in devices:
            p.terminate()
            p.communicate(timeout=30)
        code, err = stop_gateway(proc)
    assert code == 0, err


def test_offline_install_refuses_replay_and_foreign_lists(house: House, tmp_path: Path) -> None:
    install_bundle(house.state, house.bundles["gw-1"])
    crl = house.site.root / "ca" / "crl.pem"
    old = tmp_path / "old-crl.pem"
    old.write_bytes(crl.read_bytes())
    house.site.revoke("lost")
    ok = gateway("crl", "install", "--state-dir", str(house.state), str(crl), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["into"] == "state directory"
    same = gateway("crl", "install", "--state-dir", str(house.state), str(crl))
    assert same.returncode == 0 and "already installed" in same.stdout
    replay = gateway("crl", "install", "--state-dir", str(house.state), str(old), "--json")
    assert replay.returncode == 1 and "not newer" in replay.stderr
    assert json.loads(replay.stdout)["error"] == "integrity"
    other = Site.init(tmp_path / "other", 3, "Elsewhere")
    foreign = gateway("crl", "install", "--state-dir", str(house.state),
                      str(other.root / "ca" / "crl.pem"))
    assert foreign.returncode == 1 and "for site %s, not this site" % other.site_id \
        in foreign.stderr
    forged = tmp_path / "forged.pem"
    forged.write_bytes(crl.read_bytes().replace(b"\n-----END", b"AAAA\n-----END"))
    bad = gateway("crl", "install", "--state-dir", str(house.state), str(forged))
    assert bad.returncode == 1 and "error:" in bad.stderr and "Traceback" not in bad.stderr
    assert (house.state / "identity" / "crl.pem").read_bytes() == crl.read_bytes()
    # restarting with the installation bundle (`run --bundle`) must not roll the list back
    install_bundle(house.state, house.bundles["gw-1"])
    assert (house.state / "identity" / "crl.pem").read_bytes() == crl.read_bytes()
    missing = gateway("crl", "install", "--state-dir", str(tmp_path / "nothing"), str(crl))
    assert missing.returncode == 1 and "no installation bundle" in missing.stderr


def test_platform_pushes_over_the_wan(house: House, tmp_path: Path) -> None:
    require("mosquitto")
    broker = house.broker(tmp_path / "broker")
    proc, endpoint = start_gateway(house.state, house.bundles["gw-1"], "--broker", broker.url)
    dev = subprocess.Popen(device_cmd(house.creds["lost"], endpoint, "--interval", "0.5"),
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    site = str(house.site.root)
    try:
        wait_for(house.state, lambda d: (d.get("wan") or {}).get("connected") is True
                 and device(d, "lost").get("state") == "online")
        old = house.site.crl_pem()
        watch = PlatformClient(load_site(house.site.root, watch=True), broker.url)
        watch.connect()
        house.site.revoke("lost")
        push = mamori("platform", "revocations", "--broker", broker.url, "--site", site,
                      "--gateway", "gw-1", "--json")
        assert push.returncode == 0, push.stdout + push.stderr
        res = json.loads(push.stdout)
        assert res["confirmed"] and res["gateways"]["gw-1"]["status"] == "installed"
        assert res["gateways"]["gw-1"]["number"] == house.site.crl().number
        st = wait_for(house.state, lambda d: device(d, "lost").get("state") == "removed")
        assert device(st, "lost")["reason"] == "revoked"
        # ... and the platform hears of it on the alert uplink
        try:
            up = watch.wait_for(lambda m: m.get("type") == "alerts" and
                                m["body"].get("kind") == "device.revoked", 30)
        finally:
            watch.close()
        assert up and up[0]["body"]["target"] == "lost" and up[0]["gateway"] == "gw-1"
        # the same list again: already there, still confirmed
        again = mamori("platform", "revocations", "--broker", broker.url, "--site", site,
                       "--gateway", "gw-1")
        assert again.returncode == 0 and "current" in again.stdout
        # a replayed older list, another site's list, garbage: refused by the gateway
        client = PlatformClient(load_site(house.site.root), broker.url)
        client.connect()
        try:
            other = Site.init(tmp_path / "other", 3, "Elsewhere")
            answers = {}
            for name, pem in (("replay", old), ("foreign", other.crl_pem()),
                              ("garbage", "-----BEGIN X509 CRL-----\nAAAA\n")):
                start = client.mark()
                client.publish("mamori/v1/gw-1/crl_push", {"id": "t-" + name, "crl": pem})
                found = client.wait_for(lambda m, n=name: m.get("type") == "crl" and
                                        m["body"].get("request_id") == "t-" + n, 30,
                                        start=start)
                assert found, name
                answers[name] = found[0]["body"]
            client.publish_raw("mamori/v1/gw-1/crl_push", b'{"id": "x", "crl": NaN}')
        finally:
            client.close()
        assert answers["replay"]["status"] == "refused"
        assert "not newer" in answers["replay"]["reason"]
        assert answers["foreign"]["status"] == "refused"
        assert "not this site" in answers["foreign"]["reason"]
        assert answers["garbage"]["status"] == "refused"
        st = wait_for(house.state, lambda d: len(events(d, "crl.refused")) >= 3)
        assert st["crl"]["number"] == house.site.crl().number  # still the newest list
        # refresh: re-signed (next number), pushed, confirmed
        fresh = mamori("platform", "revocations", "--broker", broker.url, "--site", site,
                       "--gateway", "gw-1", "--resign", "--json")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert json.loads(fresh.stdout)["crl_number"] == house.site.crl().number
    finally:
        dev.terminate()
        dev.communicate(timeout=30)
        code, err = stop_gateway(proc)
        broker.stop()
    assert code == 0, err


def test_push_to_an_absent_gateway_is_not_confirmed(house: House, tmp_path: Path) -> None:
    require("mosquitto")
    broker = house.broker(tmp_path / "broker")
    try:
        out = mamori("platform", "revocations", "--broker", broker.url, "--site",
                     str(house.site.root), "--gateway", "gw-2", "--timeout", "2", "--json")
        unknown = mamori("platform", "revocations", "--broker", broker.url, "--site",
                         str(house.site.root), "--gateway", "nobody")
    finally:
        broker.stop()
    assert out.returncode == 3
    assert json.loads(out.stdout.split("\n}\n")[0] + "\n}")["gateways"]["gw-2"]["status"] \
        == "no-answer"
    assert unknown.returncode == 1 and "not a live gateway" in unknown.stderr
