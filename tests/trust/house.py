"""A provisioned house for the trust tests: site, two gateways, pinned devices, real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.components import faketime_lib
from tests.conftest import ROOT
from tests.gateway.helpers import gateway_cmd, spawn_gateway, wait_for


@dataclass
class House:
    """Site ``Home`` with gateways gw-1 (installed in ``state``) and gw-2, devices on gw-1."""

    root: Path
    site: Site
    state: Path
    bundles: dict[str, Path]
    creds: dict[str, Path] = field(default_factory=dict)

    def device(self, dev_id: str, model: str = "Lock 1", gateway: str = "gw-1",
               transport: str = "ip") -> Path:
        """Issue one device of this site (pinned to `gateway`); its credential file."""
        out = self.root / (dev_id + ".json")
        issue_device(self.site, transport, "Acme", model, dev_id, out, gateway=gateway)
        self.creds[dev_id] = out
        return out

    def broker(self, workdir: Path) -> EmbeddedBroker:
        """The shipped broker configuration with this site's platform certificates."""
        p = self.site.root / "platform"
        b = EmbeddedBroker(workdir, BrokerTls(p / "ca.pem", p / "server.pem", p / "server.key",
                                              self.site.root / "ca" / "crl.pem"))
        b.start()
        return b


def make_house(root: Path, grants: list[dict[str, Any]] | None = None) -> House:
    """A ★★★ site; gw-1 grants the platform lock/unlock on `door` (default)."""
    site = Site.init(root / "site", 3, "Home")
    site.allow("Acme", "Lock 1", "ip")
    site.allow("Acme", "Sensor 1", "ip")
    site.allow("Acme", "Lock 1", "ble")
    site.allow("Acme", "Garage 1", "ip", three_star=["open"])  # its "open" lets people in
    bundles = {}
    for gw in ("gw-1", "gw-2"):
        bundles[gw] = root / (gw + ".bundle")
        issue_gateway(site, "sim", gw, bundles[gw], acl=grants if grants is not None else [
            {"principal": "platform", "device": "door", "actions": ["lock", "unlock"]}])
    return House(root, site, root / "state", bundles)


def run(*cmd: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command of this checkout and capture its output."""
    return subprocess.run(list(cmd), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          **kw)


def mamori(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`mamori ARGS`."""
    return run(sys.executable, "-m", "host_tools.cli.main", *args, **kw)


def gateway(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    """`mamori-gateway ARGS`."""
    return run(*gateway_cmd(*args), **kw)


def device_cmd(creds: Path, endpoint: str, *args: str) -> list[str]:
    """`mamori-device --credentials FILE --gateway HOST:PORT ARGS`."""
    return [sys.executable, "-m", "firmware.device.cli", "--credentials", str(creds),
            "--gateway", endpoint, *args]


def start_gateway(state: Path, bundle: Path, *args: str, prefix: tuple[str, ...] = (),
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """`mamori-gateway run --board sim --bundle B --state-dir S ARGS`; (process, LAN endpoint)."""
    proc = spawn_gateway([*prefix, *gateway_cmd("run", "--board", "sim", "--bundle", str(bundle),
                                                 "--state-dir", str(state), *args)],
                         state, env=env)
    try:
        doc = wait_for(state, lambda d: (d.get("lan") or {}).get("port", 0) > 0
                       and d["gateway"].get("running"), 60)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise AssertionError("gateway did not start: " + proc.log.read_text()[-3000:])  # type: ignore[attr-defined]
    return proc, "%s:%d" % (doc["lan"]["host"], doc["lan"]["port"])


def events(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The recent events of one kind in a status document."""
    return [e for e in doc.get("events", []) if e["kind"] == kind]


def device(doc: dict[str, Any], dev_id: str) -> dict[str, Any]:
    """One device of a status document ({} when not listed)."""
    return next((d for d in doc.get("devices", []) if d["id"] == dev_id), {})


def creds_doc(path: Path) -> dict[str, Any]:
    """A credential file's content."""
    return dict(json.loads(Path(path).read_text()))


def faketime_env(days: float) -> dict[str, str]:
    """The environment of a process whose clock runs `days` ahead (libfaketime, real processes)."""
    import os

    lib = faketime_lib()
    assert lib is not None, "require('faketime') first"
    return dict(os.environ, LD_PRELOAD=lib, FAKETIME="+%dd" % days, TZ="UTC",
                FAKETIME_NO_CACHE="1")
