"""The MicroPython small-site gateway (firmware/micropython) on the real MicroPython unix port:
devices get in over mutual TLS only, judged by the device list signed for this gateway (revoked,
unknown, another site's, no certificate: refused, each with its reason), and a device list that
was altered or rolled back leaves the LAN off. Real processes: the gateway on the unix port, the
CPython `mamori-device`, the MicroPython device agent, a bare TLS client."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.device.credentials import load as load_creds
from provisioning.devicelist import write_list
from provisioning.devices import gateway_pin_doc, issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT, require
from tests.mpy.helpers import McuGateway, mpy_agent_cmd
from tests.trust.house import device_cmd


class SmallSite:
    """Site ``Small``: gateway mcu-1 on a Pico W, devices pinned to it, its state dir."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = Site.init(root / "site", 2, "Small")
        self.site.allow("Acme", "Lock 1", "ip")
        self.site.allow("Acme", "Pico", "ip", constrained_stack=True)
        self.bundle = root / "mcu-1.bundle"
        issue_gateway(self.site, "pico-w", "mcu-1", self.bundle)
        self.state = root / "state"
        self.state.mkdir()
        (self.state / "installation.bundle").write_bytes(self.bundle.read_bytes())

    def device(self, dev_id: str, model: str = "Lock 1") -> Path:
        out = self.root / (dev_id + ".json")
        issue_device(self.site, "ip", "Acme", model, dev_id, out, gateway="mcu-1")
        return out

    def publish_list(self) -> dict:
        """`mamori provision device-list` into the board's state dir (what flash deploy does)."""
        return write_list(self.site, "mcu-1", self.state / "device-list.json")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[SmallSite]:
    require("micropython")
    yield SmallSite(tmp_path)


def _device(creds: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(device_cmd(creds, endpoint, "--once"), cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def _no_certificate(small: SmallSite, endpoint: str) -> str:
    """A TLS client that trusts the site but shows no certificate; what it got."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=small.site.ca_pem() + small.site.root_pem())
    host, port = endpoint.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                tls.sendall(b'\x00\x00\x00\x2a{"type": "heartbeat", "device": "lock-1"}')
                return "answered: %r" % tls.recv(100)
        except (ssl.SSLError, OSError) as exc:
            return "refused: %s" % exc


def test_small_site_gateway_admits_over_mutual_tls_and_refuses_the_rest(
        small: SmallSite) -> None:
    lock = small.device("lock-1")
    pico = small.device("pico-1", "Pico")
    revoked = small.device("lock-old")
    small.site.revoke("lock-old", "stolen")
    small.publish_list()
    late = small.device("lock-late")  # issued after the list the board holds
    other = Site.init(small.root / "other", 2, "Elsewhere")
    other.allow("Acme", "Lock 1", "ip")
    issue_gateway(other, "pico-w", "mcu-x", small.root / "mcu-x.bundle")
    foreign = small.root / "foreign.json"
    issue_device(other, "ip", "Acme", "Lock 1", "lock-x", foreign, gateway="mcu-x")
    doc = load_creds(foreign)  # an attacker's: its own certificate, trusting our site and pin
    mine = load_creds(lock)
    doc.update(ca_chain=mine["ca_chain"], crl=mine["crl"], gateway_tls=mine["gateway_tls"],
               gateway_pin=gateway_pin_doc(small.site, "lock-x", small.site.issued("mcu-1")))
    foreign.write_text(json.dumps(doc))
    gw = McuGateway(small.state).start()
    try:
        assert "lan: mutual TLS on %s, device list #1 (2 devices, 1 revoked)" % gw.endpoint \
            in gw.said("lan: mutual TLS")
        # The CPython device agent of a normal model (TLS 1.2: the board offers no TLS 1.3).
        ok = _device(lock, gw.endpoint)
        assert ok.returncode == 0 and "authenticated to gateway mcu-1" in ok.stdout, ok.stderr
        gw.said("lan: device.connected lock-1: admitted")
        gw.said("device lock-1: online")
        # The MicroPython device agent too (both ends on MicroPython).
        m = subprocess.run(mpy_agent_cmd(Path(str(pico) + ".mpy.json"), gw.endpoint,
                                         "--once"), cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        assert m.returncode == 0, m.stdout + m.stderr
        assert json.loads(m.stdout)["gateway"] == "mcu-1"
        gw.said("lan: device.connected pico-1: admitted")
        # No certificate: the handshake fails, the old unauthenticated heartbeat goes nowhere.
        got = _no_certificate(small, gw.endpoint)
        assert got.startswith("refused"), got
        gw.said("TLS handshake failed: no client certificate")
        # Revoked, unknown to the list, another site's: refused, each with its reason.
        r = _device(revoked, gw.endpoint)
        assert r.returncode != 0 and "credentials were revoked" in r.stderr, r.stderr
        assert "lan: auth.refused" in gw.said("is revoked")
        u = _device(late, gw.endpoint)
        assert u.returncode != 0
        gw.said("not on this gateway's device list #1")
        f = _device(foreign, gw.endpoint)
        assert f.returncode != 0
        gw.said("client certificate rejected")
        refused = [ln for ln in gw.lines if "lan: auth.refused" in ln]
        assert len(refused) == 4, refused
        assert not [ln for ln in gw.lines if "admitted" in ln and ("lock-old" in ln
                                                                   or "lock-late" in ln
                                                                   or "lock-x" in ln)]
    finally:
        gw.stop()
    # A fresh list (#2) lets the late device in.
    assert small.publish_list()["number"] == 2
    gw = McuGateway(small.state).start()
    try:
        gw.said("device list #2 (3 devices, 1 revoked)")
        assert _device(late, gw.endpoint).returncode == 0
        gw.said("lan: device.connected lock-late: admitted")
    finally:
        gw.stop()


def test_an_altered_or_older_device_list_leaves_the_lan_off(small: SmallSite) -> None:
    small.device("lock-1")
    small.publish_list()
    first = (small.state / "device-list.json").read_bytes()
    small.publish_list()  # #2, what the board uses next
    gw = McuGateway(small.state).start()
    gw.said("device list #2")
    gw.stop()
    # Rolled back to #1 (from before some revocation): refused, no LAN at all.
    (small.state / "device-list.json").write_bytes(first)
    gw = McuGateway(small.state).start()
    try:
        assert "device list #1 is older than #2" in gw.said("network: none")
    finally:
        gw.stop()
    # Altered: a device slipped into the payload without the key.
    doc = json.loads(small.publish_list() and (small.state / "device-list.json").read_text())
    payload = json.loads(doc["payload"])
    payload["devices"].append(dict(payload["devices"][0], id="intruder", sha256="0" * 64))
    doc["payload"] = json.dumps(payload)
    (small.state / "device-list.json").write_text(json.dumps(doc))
    gw = McuGateway(small.state).start()
    try:
        assert "does not verify" in gw.said("network: none")
    finally:
        gw.stop()
