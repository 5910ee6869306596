"""The staging gateway: a provisioned `sim` gateway in the lab's gateway namespace.

A throw-away site issues the gateway's bundle (mutual TLS on the LAN port, as in the field); the
board's firewall ruleset is applied in the gateway namespace; the gateway itself is the `sim`
gateway's composition (``host_tools.scan.stagegw``, i.e. ``mamori-gateway run --board sim``
with the lab's interfaces) started with ``ip netns exec``. Extra services (``PROTO/PORT=
COMMAND``) are started next to it and declared to the firewall: that is how a release that
ships an additional listener looks, and how the tests stage a weakened gateway.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import ConfigError, StateError
from firmware.gateway.firewall import posture
from firmware.gateway.firewall.policy import Port, policy_for_board
from firmware.gateway.firewall.ruleset import build
from host_tools.scan.netlab import GW_LAN, Lab

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 45.0


@dataclass(frozen=True)
class ExtraService:
    """A process started in the gateway namespace listening on PROTO/PORT (and more ports)."""

    proto: str
    port: int
    command: str
    more: tuple[tuple[str, int], ...] = ()

    @property
    def ports(self) -> tuple[tuple[str, int], ...]:
        """Every (proto, port) the process listens on."""
        return ((self.proto, self.port), *self.more)

    @staticmethod
    def parse(spec: str) -> ExtraService:
        """Parse ``tcp/2323=python3 -m http.server 2323`` or ``udp/161,tcp/2324=COMMAND``."""
        head, sep, command = spec.partition("=")
        ports: list[tuple[str, int]] = []
        for item in head.split(","):
            proto, _, port = item.strip().partition("/")
            if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
                ports = []
                break
            ports.append((proto, int(port)))
        if not sep or not command.strip() or not ports or len(set(ports)) != len(ports):
            raise ConfigError(f"bad staged service {spec!r}", hint="PROTO/PORT[,PROTO/PORT]="
                              "COMMAND, e.g. tcp/2323=python3 -m http.server 2323")
        return ExtraService(ports[0][0], ports[0][1], command.strip(), tuple(ports[1:]))


def lab_interfaces(board: Board) -> tuple[str, str]:
    """The board's WAN and LAN interface names (eth0/wlan0 for loopback-only boards)."""
    kinds = {i.name: i.kind for i in board.network}

    def first(role: str, default: str) -> str:
        for n in board.interfaces(role):
            if n != "lo" and kinds.get(n) != "loopback":
                return str(n)
        return default

    return first("wan", "eth0"), first("lan", "wlan0")


def lab_board(board: Board, wan_if: str, lan_if: str) -> Board:
    """The board profile with its interfaces as the lab names them (for the ruleset)."""
    return board.with_changes(network=[{"name": wan_if, "role": "wan", "kind": "ethernet"},
                                       {"name": lan_if, "role": "lan", "kind": "ethernet"}])


class Staging:
    """Bring the staging gateway up inside a lab; its processes end with the lab."""

    def __init__(self, lab: Lab, board_name: str, work: Path,
                 extra: tuple[ExtraService, ...] = ()) -> None:
        self.lab = lab
        self.board_name = board_name
        self.board = load_board(board_name)
        self.work = Path(work)
        self.extra = extra
        self.info: dict[str, Any] = {}

    def up(self) -> dict[str, Any]:
        """Provision, firewall, start; returns what the report records about the staging."""
        from provisioning.gateway import issue_gateway
        from provisioning.site import Site

        site = Site.init(self.work / "site", 3, "release-scan staging")
        bundle = self.work / "gateway.bundle"
        issue_gateway(site, "sim", "staging-gw", bundle)
        ports = tuple(Port(proto, port, "staged extra service")
                      for s in self.extra for proto, port in s.ports)
        ruleset = build(policy_for_board(lab_board(self.board, self.lab.wan_if, self.lab.lan_if),
                                         LAN_DEVICE_PORT, ADMIN_HTTPS_PORT, ports))
        posture.apply(ruleset, self.lab.gw)
        names = self.work / "services.json"
        cmd = [sys.executable, "-m", "host_tools.scan.stagegw", "--state-dir",
               str(self.work / "state"), "--bundle", str(bundle), "--lan-host", GW_LAN,
               "--wan-if", self.lab.wan_if, "--lan-if", self.lab.lan_if,
               "--services-file", str(names)]
        gw = self.lab.start(self.lab.gw, cmd, cwd=str(ROOT))
        for s in self.extra:
            self.lab.start(self.lab.gw, ["sh", "-c", s.command], cwd=str(self.work))
        wanted = [("tcp", LAN_DEVICE_PORT)] + [pp for s in self.extra for pp in s.ports]
        self._wait(wanted, gw)
        services = json.loads(names.read_text(encoding="utf-8"))
        if "admin" in services:
            self._wait([("tcp", ADMIN_HTTPS_PORT)], gw)
        self.info = {"gateway": f"sim gateway (services {', '.join(services)}; firewall: "
                                f"{self.board_name} ruleset {ruleset.digest()[:12]})",
                     "services": services,
                     "firewall_digest": ruleset.digest(),
                     "interfaces": {"wan": self.lab.wan_if, "lan": self.lab.lan_if},
                     "extra_services": [f"{proto}/{port}" for s in self.extra
                                        for proto, port in s.ports]}
        return self.info

    def _wait(self, wanted: list[tuple[str, int]], gw: Any) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            missing = [(p, n) for p, n in wanted if n not in self.lab.listening(self.lab.gw, p)]
            if not missing:
                return
            if gw.poll() is not None:
                err = gw.stderr.read().decode(errors="replace")[-600:] if gw.stderr else ""
                raise StateError("the staging gateway exited with code %s" % gw.returncode,
                                 hint=err.strip())
            if time.monotonic() > deadline:
                raise StateError("staging services did not start listening: "
                                 + ", ".join(f"{p}/{n}" for p, n in missing))
            time.sleep(0.3)
