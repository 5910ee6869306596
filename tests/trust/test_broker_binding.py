"""The shipped broker configuration binds MQTT identity to the certificate (issue 14, part 5).

Real Mosquitto with the configuration the demo runs and the README documents, real site
certificates from `mamori provision`: device certificates cannot connect, no certificate can take
over another identity's client id, a copied gateway key that kicks the gateway off is reported
once the gateway is back, and the connect/disconnect counters are right.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware.gateway.identity.install import install_bundle
from firmware.gateway.sim.broker import EmbeddedBroker, acl_text, free_port, mosquitto_binary
from firmware.gateway.wan.from_install import wan_identity
from firmware.gateway.wan.service import WanService
from host_tools.platform.client import PlatformClient
from host_tools.platform.site import load_site
from tests.conftest import ROOT, require
from tests.trust.house import House, creds_doc, make_house
from tests.wan.gwharness import FakeGateway, run_gateway
from tests.wan.helpers import client, wait


@pytest.fixture
def house(tmp_path: Path) -> Iterator[tuple[House, EmbeddedBroker]]:
    require("mosquitto")
    h = make_house(tmp_path)
    h.device("door")
    b = h.broker(tmp_path / "broker")
    yield h, b
    b.stop()


def _files(h: House, name: str, cert: str, key: str) -> tuple[Path, Path]:
    c, k = h.root / (name + ".crt"), h.root / (name + ".key")
    c.write_text(cert)
    k.write_text(key)
    k.chmod(0o600)
    return c, k


def _gateway_files(h: House, gw: str) -> tuple[Path, Path]:
    p = json.loads(h.bundles[gw].read_text())["payload"]
    return _files(h, gw, p["certificate"] + p["site_ca"], p["secrets"]["tls_key"])


class Raw:
    """A bare paho client with chosen certificate and client id: what an attacker runs."""

    def __init__(self, h: House, port: int, cert: Path, key: Path, client_id: str) -> None:
        self.connack: Any = None
        self.acks: dict[int, Any] = {}
        self.subacks: list[Any] = []
        self.event = threading.Event()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(str(h.site.root / "platform" / "ca.pem"))
        ctx.load_cert_chain(str(cert), str(key))
        self.c.tls_set_context(ctx)
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc)
        self.c.on_subscribe = lambda _c, _u, _m, codes, _p: self.subacks.extend(codes)
        self.c.on_message = lambda _c, _u, msg: self.received.append(msg.topic)
        self.c.on_disconnect = lambda *_a: self.event.set()
        self.received: list[str] = []
        self.error = ""
        try:
            self.c.connect("localhost", port)
        except (OSError, ssl.SSLError) as exc:
            self.error = repr(exc)
            self.event.set()
            return
        self.c.reconnect_delay_set(30, 60)  # one attempt: no reconnect storm in the test
        self.c.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        self.connack = rc
        self.event.set()

    def accepted(self) -> bool:
        """Wait for the CONNACK (or the TLS refusal); True when the broker let us in."""
        assert self.event.wait(20), "no answer from the broker"
        return self.connack is not None and not self.connack.is_failure

    def publish(self, topic: str) -> Any:
        """Publish QoS 1; the PUBACK reason."""
        info = self.c.publish(topic, b'{"id": "forged", "body": {}}', qos=1)
        assert wait(lambda: info.mid in self.acks)
        return self.acks[info.mid]

    def close(self) -> None:
        """Disconnect and stop."""
        self.c.disconnect()
        self.c.loop_stop()


def test_device_and_server_certificates_cannot_connect(house: tuple[House, EmbeddedBroker]
                                                       ) -> None:
    h, b = house
    dev = creds_doc(h.creds["door"])
    cert, key = _files(h, "door", dev["certificate"], dev["private_key"])
    device = Raw(h, b.port, cert, key, "gw-1")
    assert not device.accepted()
    assert device.connack is not None and device.connack.value == 134  # no CN: no user
    device.close()
    p = h.site.root / "platform"
    server = Raw(h, b.port, p / "server.pem", p / "server.key", "mamori-platform-client")
    assert not server.accepted()  # a server-only certificate is no client
    server.close()
    assert "u'" not in b.log_tail().split("door")[-1]  # never got a user name


def test_client_id_takeover_refused(house: tuple[House, EmbeddedBroker], tmp_path: Path
                                    ) -> None:
    h, b = house
    install_bundle(h.state, h.bundles["gw-1"])
    ident = wan_identity(h.state, None, b.url.replace("127.0.0.1", "localhost"))
    gw = client(ident, tmp_path / "q.db")
    platform = PlatformClient(load_site(h.site.root, watch=True),
                              b.url.replace("127.0.0.1", "localhost"))
    platform.connect()
    try:
        assert wait(lambda: gw.connected), gw.last_error
        start = platform.mark()
        cert, key = _gateway_files(h, "gw-2")
        rogue = Raw(h, b.port, cert, key, "gw-1")  # another gateway's key, our id
        assert rogue.accepted()  # ... as itself: the broker renamed it gw-2
        assert rogue.publish("mamori/v1/gw-1/alerts").is_failure  # not authorised
        rogue.c.subscribe("mamori/v1/gw-1/#", qos=1)
        assert wait(lambda: bool(rogue.subacks))
        # a command for gw-1 reaches gw-1, never the rogue that subscribed to gw-1's topics
        before = gw.counters["inbound_accepted"]
        platform.publish("mamori/v1/gw-1/cmd/door", {"v": 1, "id": "watch"})  # read-only
        operator = PlatformClient(load_site(h.site.root), b.url.replace("127.0.0.1",
                                                                        "localhost"))
        operator.connect(subscribe=False)
        try:
            operator.publish("mamori/v1/gw-1/cmd/door", {"v": 1, "id": "probe"})
            assert wait(lambda: gw.counters["inbound_accepted"] > before)
        finally:
            operator.close()
        assert gw.counters["inbound_accepted"] == before + 1  # the watcher's never arrived
        assert not any("gw-1" in t for t in rogue.received)
        p = h.site.root / "platform"
        plat = Raw(h, b.port, p / "client.pem", p / "client.key", "gw-1")  # the platform's key
        assert plat.accepted()
        assert "as gw-2 (" in b.log_tail() and "as mamori-platform-client (" in b.log_tail()
        # nobody took gw-1's session: connected once, never dropped, no takeover
        assert gw.connected and gw.counters["connects"] == 1
        assert gw.counters["disconnects"] == 0 and gw.counters["takeovers"] == 0
        assert not platform.wait_for(lambda m: m.get("id") == "forged", 1.0, start=start)
        for r in (rogue, plat):
            r.close()
    finally:
        gw.stop()
        platform.close()


def test_copied_key_kicks_the_gateway_and_it_says_so(house: tuple[House, EmbeddedBroker],
                                                     tmp_path: Path) -> None:
    h, b = house
    install_bundle(h.state, h.bundles["gw-1"])
    ident = wan_identity(h.state, None, b.url.replace("127.0.0.1", "localhost"))

    def steps(gw: FakeGateway, svc: WanService) -> dict[str, Any]:
        assert svc.client is not None
        assert wait(lambda: svc.client is not None and svc.client.connected)
        clone = client(ident, tmp_path / "clone.db")  # the same key, on another box
        assert wait(lambda: clone.connected)
        clone.stop()  # gone again; its last status stays on the broker
        assert wait(lambda: any(e.kind == "wan.session_taken_over" for e in gw.events))
        assert wait(lambda: svc.client is not None and svc.client.connected)
        return {"events": list(gw.events), "status": svc.status()}

    out = run_gateway(ident, h.state, steps)
    alerts = [e for e in out["events"] if e.kind == "wan.session_taken_over"]
    assert alerts and all(e.severity == "alert" for e in alerts)
    assert "key may be copied" in alerts[0].reason
    st = out["status"]
    # every takeover reported (the clone and the gateway may kick each other more than once)
    assert sum(int(e.params["count"]) for e in alerts) == st["takeovers"] >= 1
    assert st["connects"] == st["disconnects"] + 1 >= 2  # connected now: one more connect


def test_counters_right_and_no_false_alarm_after_restarts(house: tuple[House, EmbeddedBroker],
                                                          tmp_path: Path) -> None:
    h, b = house
    install_bundle(h.state, h.bundles["gw-1"])
    ident = wan_identity(h.state, None, b.url.replace("127.0.0.1", "localhost"))
    token = tmp_path / "conn-token"
    c = client(ident, tmp_path / "q.db", token_file=token)
    try:
        assert wait(lambda: c.connected)
        b.restart()  # the broker goes away and comes back
        assert wait(lambda: c.counters["connects"] == 2 and c.connected, 30)
        assert c.counters["disconnects"] == 1  # before: 0 (the loss was never counted)
    finally:
        c.stop()
    for remembered, alarms in ((True, 0), (False, 1)):
        again = client(ident, tmp_path / "q.db",  # the gateway restarts
                       token_file=token if remembered else tmp_path / "forgotten")
        try:
            assert wait(lambda a=again: a.connected and a.counters["own_status"] >= 1)
            # its own last status is no clone; without the remembered tokens it would be
            assert again.counters["takeovers"] == alarms
        finally:
            again.stop()


def test_readme_configuration_runs_and_binds(tmp_path: Path) -> None:
    require("mosquitto")
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:conf|text)\n(.*?)```", text, re.S)
    conf = next(x for x in blocks if "use_username_as_clientid" in x)
    for line in ("require_certificate true", "use_identity_as_username true",
                 "use_username_as_clientid true", "allow_anonymous false"):
        assert line in conf.splitlines()
    acl = next(x for x in blocks if x.startswith("# generated by mamori"))
    assert acl == acl_text()  # the README's ACL is the shipped one
    # ... and the documented configuration really runs, with a site's files put in its paths
    h = make_house(tmp_path)
    h.device("door")
    etc = tmp_path / "etc"
    etc.mkdir()
    p = h.site.root
    for src, name in ((p / "platform/ca.pem", "ca.pem"), (p / "platform/server.pem",
                                                          "server.pem"),
                      (p / "platform/server.key", "server.key"), (p / "ca/crl.pem", "crl.pem")):
        (etc / name).write_bytes(src.read_bytes())
    (etc / "acl").write_text(acl)
    port = free_port()
    conf = conf.replace("/etc/mosquitto/mamori", str(etc)).replace(
        "listener 8883", "listener %d 127.0.0.1" % port)
    (etc / "mosquitto.conf").write_text(conf + "user %s\n" % pwd.getpwuid(os.geteuid())[0])
    proc = subprocess.Popen([mosquitto_binary(), "-c", str(etc / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait(lambda: _listening(port) or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        install_bundle(h.state, h.bundles["gw-1"])
        gw = client(wan_identity(h.state, None, "mqtts://localhost:%d" % port),
                    tmp_path / "q.db")
        try:
            assert wait(lambda: gw.connected), gw.last_error
        finally:
            gw.stop()
        dev = creds_doc(h.creds["door"])
        cert, key = _files(h, "door", dev["certificate"], dev["private_key"])

        device = Raw(h, port, cert, key, "gw-1")
        assert not device.accepted()
        device.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
