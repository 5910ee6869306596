"""A provisioned house for the MicroPython tests: site, gateways, devices, real processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from provisioning import pki
from provisioning.devices import gateway_pin_doc, issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT

T = TypeVar("T")


def refusal_reasons(state: Path) -> list[str]:
    """The reasons of the gateway's auth.refused records, from its access log."""
    p = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "logs", "show", str(state),
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [str(r.get("reason")) for r in json.loads(p.stdout) if r.get("kind") == "auth.refused"]


def until(probe: Callable[[], T], timeout: float = 30.0) -> T:
    """Poll `probe` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("condition never held: %r" % (got,))
        time.sleep(0.2)


def micropython() -> str:
    """The MicroPython unix port's command (installed by `make deps`)."""
    return str(Path(sys.executable).parent / "micropython")


def mpy_agent_cmd(descriptor: Path, endpoint: str, *args: str) -> list[str]:
    """The MicroPython device agent on the unix port, run from this checkout."""
    return [micropython(), "-m", "firmware.device.portable.mpycli", "--credentials",
            str(descriptor), "--gateway", endpoint, *args]


class MpyHouse:
    """Site ``Home`` (★★): a MicroPython model (Pico, constrained stack) and a normal one
    (Lock 1); gateways gw-1 (devices pinned to it, installed into ``state``) and gw-2."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.site = Site.init(root / "site", 2, "Home")
        self.site.allow("Acme", "Pico", "ip", constrained_stack=True)
        self.site.allow("Acme", "Lock 1", "ip")
        self.bundles = {}
        for gw in ("gw-1", "gw-2"):
            self.bundles[gw] = root / (gw + ".bundle")
            issue_gateway(self.site, "sim", gw, self.bundles[gw], acl=[
                {"principal": "platform", "device": "pico-1",
                 "actions": ["open", "close", "unlock"]}])
        self.bundle = self.bundles["gw-1"]
        self.state = root / "state"
        self.creds: dict[str, Path] = {}
        self.procs: list[subprocess.Popen[str]] = []
        self._broker: EmbeddedBroker | None = None

    def device(self, dev_id: str, model: str, gateway: str = "gw-1") -> Path:
        """Issue an IP device of this site pinned to `gateway`; its credential file."""
        out = self.root / (dev_id + ".json")
        issue_device(self.site, "ip", "Acme", model, dev_id, out, gateway=gateway)
        self.creds[dev_id] = out
        return out

    @staticmethod
    def mpy(creds: Path) -> Path:
        """The MicroPython descriptor beside a credential file."""
        return Path(str(creds) + ".mpy.json")

    def foreign_device(self, dev_id: str) -> tuple[Path, Path]:
        """Another site's device that trusts this site's CA and is pinned to gw-1 (an attacker
        who knows the gateway): (MicroPython descriptor, CPython credential file)."""
        other = Site.init(self.root / "other-site", 2, "Elsewhere")
        other.allow("Acme", "Pico", "ip", constrained_stack=True)
        issue_gateway(other, "sim", "gw-x", self.root / "gw-x.bundle")
        src = self.root / ("foreign-" + dev_id + ".json")
        issue_device(other, "ip", "Acme", "Pico", dev_id, src, gateway="gw-x")
        doc = json.loads(src.read_text())
        doc["ca_chain"] = self.site.ca_pem() + self.site.root_pem()
        doc["gateway_pin"] = gateway_pin_doc(self.site, dev_id, self.site.issued("gw-1"))
        doc["crl"] = self.site.crl_pem()
        cpython = self.root / ("attacker-" + dev_id + ".json")
        cpython.write_text(json.dumps(doc))
        desc = json.loads(self.mpy(src).read_text())
        desc["gateway_sha256"] = doc["gateway_pin"]["payload"]["certificate_sha256"]
        desc["gateway_id"] = "gw-1"
        Path(str(src) + ".ca.der").write_bytes(
            self.site.ca_cert().public_bytes(serialization.Encoding.DER))
        self.mpy(src).write_text(json.dumps(desc))
        return self.mpy(src), cpython

    def broker(self, workdir: Path) -> EmbeddedBroker:
        """The shipped broker configuration with this site's platform certificates."""
        p = self.site.root / "platform"
        self._broker = EmbeddedBroker(workdir, BrokerTls(p / "ca.pem", p / "server.pem",
                                                         p / "server.key",
                                                         self.site.root / "ca" / "crl.pem"))
        self._broker.start()
        return self._broker

    def spawn(self, cmd: list[str]) -> subprocess.Popen[str]:
        """Start a process of this checkout (stopped by ``stop``)."""
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """End every process this house started, then its broker."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
            try:
                p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
        if self._broker is not None:
            self._broker.stop()


def make_mpy_house(root: Path) -> MpyHouse:
    """A fresh house under `root`."""
    return MpyHouse(root)


def rogue_gateway_cert(house: MpyHouse, workdir: Path) -> tuple[Path, Path]:
    """A certificate naming gw-1, signed by the site CA, with a new key: what a re-issued (or
    forged) gw-1 certificate looks like to a device pinned to the real one. (cert, key) PEM."""
    key = pki.new_key()
    cert = pki.issue_leaf(house.site.ca_key(), house.site.ca_cert(), key.public_key(), "gw-1",
                          "Mamori site Home", "gateway",
                          [pki.GATEWAY_URI + "gw-1", pki.SITE_URI + house.site.site_id],
                          server=True, client=True, dns=["gw-1", "localhost"])
    cert_file, key_file = workdir / "rogue.pem", workdir / "rogue.key"
    cert_file.write_text(pki.cert_pem(cert) + house.site.ca_pem())
    key_file.write_bytes(pki.key_pem(key))
    key_file.chmod(0o600)
    return cert_file, key_file


MCU_RUN = """
import sys
sys.path.insert(0, %r)
from firmware.micropython import app
app.run(%r, lan_addr=("127.0.0.1", %d))
"""


class McuGateway:
    """The MicroPython small-site gateway (firmware/micropython) on the unix port, its console
    lines collected as they come."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.lines: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> McuGateway:
        """Start it on a free loopback port (another one if that port was taken meanwhile)."""
        for _ in range(5):
            self.port = _free_port()
            self.lines = []
            self.proc = subprocess.Popen(
                [micropython(), "-c", MCU_RUN % (str(ROOT), str(self.state), self.port)],
                cwd=self.state, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
            line = until(lambda: [ln for ln in self.lines if "gateway loop started" in ln
                                  or "network: none" in ln], 60)[0]
            if "Errno 98" not in line and "EADDRINUSE" not in line:
                return self
            self.stop()
        raise AssertionError("no free port for the MicroPython gateway")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def endpoint(self) -> str:
        """HOST:PORT of its LAN."""
        return "127.0.0.1:%d" % self.port

    def said(self, needle: str, timeout: float = 30.0) -> str:
        """The first console line containing `needle` (waits for it)."""
        return until(lambda: [ln for ln in self.lines if needle in ln], timeout)[0]

    def stop(self) -> None:
        """End the process."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
