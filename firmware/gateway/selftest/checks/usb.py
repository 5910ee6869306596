"""USB checks: fixture devices inserted into a scratch sysfs tree under the live policy.

The USB guard's real code (``UsbGuardService`` decisions, ``SysfsBackend`` writes) runs against
a sysfs-shaped tree in the check's temp dir, with the gateway's live rule file (read through
``usbguard/store.py``) and board profile; events go to a scratch gateway's bus. Nothing is
written to ``/sys`` or to the live state directory. Requirements: SR2-H-5, C10, UK6.
"""

from __future__ import annotations

import re
import time
from typing import Any

from firmware.core.errors import ConfigError
from firmware.core.events import Event
from firmware.core.usbpolicy import restricted_class
from firmware.core.usbrules import port_locked
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.checks._common import live_status, verdict
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import (
    Outcome,
    check,
    failed,
    inconclusive,
    not_applicable,
    passed,
)
from firmware.gateway.selftest.scratchgw import ScratchGateway
from firmware.gateway.selftest.usbfixture import FIXTURES, HUB, STICK, FixtureTree, vendor_device
from firmware.gateway.usbguard.service import UsbGuardService
from firmware.gateway.usbguard.store import RULES_FILE
from firmware.gateway.usbguard.sysfs import DEVICE
from firmware.gateway.wan.service import event_route

PROBE_RULE = "allow id *:*"


class Scene:
    """A scratch gateway running the USB guard on a fixture tree."""

    def __init__(self, ctx: CheckContext, extra_rule: str = "") -> None:
        self.board = ctx.board()
        ports = [p.path for p in self.board.usb_ports]
        self.ports = ports
        buses = max([int(p.split("-")[0]) for p in ports] or [1])
        self.tree = FixtureTree(ctx.tempdir() / "sys", buses)
        scratch = ctx.scratch()
        if extra_rule:
            rules = scratch / RULES_FILE
            rules.parent.mkdir(parents=True, exist_ok=True)
            old = rules.read_text(encoding="utf-8") if rules.is_file() else ""
            rules.write_text(old + "\n" + extra_rule + "\n", encoding="utf-8")
        self.gw = ScratchGateway(scratch, self.board)
        self.events = self.gw.events
        self.svc = UsbGuardService(self.gw, self.tree.root, source=None, clock=time.time,
                                   tick=3600)
        self.locked_down = self.svc.backend.lockdown()
        self.policy_state = self.svc.store.reload()

    def policy_line(self) -> str:
        """Which policy the decisions were made with."""
        st = self.svc.store
        line = f"policy: {st.policy.source}, {len(st.policy.rules)} rule(s)"
        if st.digest:
            line += f", sha256 {st.digest[:16]}…"
        if self.policy_state == "invalid":
            line += f" (the rule file is invalid and was not loaded: {st.error})"
        return line

    def plug(self, port: str, spec: tuple[Any, ...]) -> dict[str, Any] | None:
        """Insert a device (and any hub on its path), let the guard decide, mimic the kernel."""
        parts = port.split(".")
        for i in range(1, len(parts)):
            hub = ".".join(parts[:i])
            if not self.tree.has(hub):
                self.plug(hub, HUB)
        self.tree.insert(port, spec)
        result = self.svc.handle(port, "insert")
        if self.tree.read(port) == "1":
            # authorised: the kernel instantiates the interfaces and the guard re-decides them
            self.tree.add_interfaces(port, spec[3])
            result = self.svc.handle(port, "reevaluate") or result
        return result

    def open_interfaces(self, port: str) -> list[str]:
        """Restricted-class interfaces of the device left authorised."""
        out = []
        for name in self.tree.interfaces(port):
            t = ":".join(self.tree.read(name, a) for a in
                         ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"))
            label = restricted_class(t)
            if label and self.tree.read(name) == "1":
                out.append(f"{name} ({label} {t})")
        return out

    def rogue_alert(self, port: str) -> Event | None:
        """The rogue.usb alert for a device, if one was emitted."""
        return next((e for e in self.events if e.kind == "rogue.usb" and e.target == port), None)

    def free_ports(self, n: int) -> list[str]:
        """Ports on the board's first bus that the profile does not list (fixture slots)."""
        bus = self.ports[0].split("-")[0] if self.ports else "1"
        out = []
        for i in range(1, 16):
            cand = f"{bus}-{i}"
            if cand in self.ports or any(p.startswith(cand + ".") for p in self.ports):
                continue
            out.append(cand)
            if len(out) == n:
                break
        return out


def _linux_ports(ctx: CheckContext) -> str | None:
    """Why the board has no sysfs USB to judge (None when it has)."""
    board = ctx.board()
    paths = [p.path for p in board.usb_ports]
    if board.runtime != "cpython":
        return f"board {board.name} runs {board.runtime}: no Linux USB stack"
    if any(not DEVICE.match(p) for p in paths):
        return f"board {board.name} USB ports are not Linux sysfs ports"
    return None


def _describe_route(ev: Event) -> str:
    route = event_route(ev)
    return f"{route[0]} (priority {route[1]})" if route else "kept local"


@check("usb.fixture-insertion", "Fixture USB devices that are not allowlisted are refused",
       requirements=["SR2-H-5", "C10", "UK6"],
       remediation="remove broad `allow` rules and interface-class allowances from "
                   "STATE_DIR/usb/rules.conf (allow exact id, serial and port only); keep the "
                   "USB guard service in the composition")
def fixture_insertion(ctx: CheckContext) -> Outcome:
    """Insert a mass-storage stick, a keyboard and a network adapter; all must be refused."""
    try:
        why = _linux_ports(ctx)
        if why:
            return not_applicable(why)
        scene = Scene(ctx)
    except ConfigError as exc:
        return inconclusive(f"cannot build the scratch USB scene: {exc}")
    problems: list[str] = []
    evidence = [scene.policy_line(),
                "lockdown: " + (", ".join(scene.locked_down) or "already default-deny")]
    for bus in [n for n in scene.tree.dirs if n.startswith("usb")]:
        for attr in ("authorized_default", "interface_authorized_default"):
            if scene.tree.read(bus, attr) != "0":
                problems.append(f"{bus}/{attr} is not 0 after the guard's lockdown")
    for need in scene.board.usb_ports:
        if not need.needed or not need.allow:
            continue
        purpose = need.purpose or "needed device"
        res = scene.plug(need.path, vendor_device(need.allow, purpose))
        ok = scene.tree.read(need.path) == "1" and all(
            scene.tree.read(i) == "1" for i in scene.tree.interfaces(need.path))
        if not ok:
            problems.append(f"the board's {purpose} ({need.allow}) on needed port "
                            f"{need.path} was refused: {res['rule'] if res else 'error'}")
        else:
            evidence.append(f"{purpose} {need.allow} on {need.path}: allowed "
                            f"({res['rule'] if res else ''})")
    for (label, spec), port in zip(FIXTURES, scene.free_ports(len(FIXTURES)), strict=True):
        res = scene.plug(port, spec)
        usb_id = "%04x:%04x" % (spec[0], spec[1])
        rule = res["rule"] if res else "guard error"
        if scene.tree.read(port) != "0":
            problems.append(f"fixture {label} {usb_id} on {port} was authorised ({rule})")
        opened = scene.open_interfaces(port)
        if opened:
            problems.append(f"fixture {label} on {port}: restricted interface(s) authorised: "
                            + ", ".join(opened))
        alert = scene.rogue_alert(port)
        route = event_route(alert) if alert is not None else None
        if alert is None:
            problems.append(f"fixture {label} on {port}: no rogue.usb alert was emitted")
        elif route is None or route[0] != "alerts":
            problems.append(f"rogue.usb for {port} would not reach the platform as an alert")
        else:
            evidence.append(f"{label} {usb_id} on {port}: refused ({rule}); rogue.usb "
                            f"{alert.severity} -> WAN {_describe_route(alert)}")
    for bus in [n for n in scene.tree.dirs if re.match(r"^usb\d+$", n)]:
        if scene.tree.read(bus) != "1":
            problems.append(f"root hub {bus} was de-authorised")
    return verdict(problems, evidence,
                   "root hubs untouched; scratch sysfs tree only (/sys not written)")


def _status_usb(ctx: CheckContext) -> dict[str, Any]:
    usb = live_status(ctx).get("usb")
    return usb if isinstance(usb, dict) else {}


@check("usb.unneeded-ports", "Ports the board marks not needed stay de-authorised",
       requirements=["SR2-H-5", "UK6"],
       remediation="keep `needed = false` on unused ports in the board profile and restart the "
                   "USB guard; investigate any device the running guard allowed on such a port")
def unneeded_ports(ctx: CheckContext) -> Outcome:
    """Devices on locked ports are refused even under an allow-everything rule."""
    try:
        why = _linux_ports(ctx)
        if why:
            return not_applicable(why)
        board = ctx.board()
        locked = [p.path for p in board.usb_ports if not p.needed]
        if not locked:
            return not_applicable(f"board {board.name} marks every USB port as needed")
        scene = Scene(ctx, extra_rule=PROBE_RULE)
    except ConfigError as exc:
        return inconclusive(f"cannot build the scratch USB scene: {exc}")
    problems: list[str] = []
    evidence = [f"locked ports: {', '.join(locked)}", scene.policy_line() +
                f" plus the probe rule `{PROBE_RULE}`"]
    needed_ids = [p.allow for p in board.usb_ports if p.needed and p.allow]
    for path in locked:
        specs: list[tuple[str, tuple[Any, ...]]] = [("mass-storage stick", STICK)]
        if needed_ids:
            specs.append(("a copy of the needed dongle", vendor_device(needed_ids[0], "dongle")))
        for label, spec in specs:
            res = scene.plug(path, spec)
            if scene.tree.read(path) != "0":
                problems.append(f"{label} on locked port {path} was authorised "
                                f"({res['rule'] if res else 'guard error'})")
            else:
                evidence.append(f"{label} on {path}: refused ({res['rule'] if res else ''})")
            scene.tree.unplug(path)
    live = _status_usb(ctx).get("devices") or {}
    for name, dev in sorted(live.items()):
        if port_locked(name, locked) and isinstance(dev, dict) and dev.get("decision") == "allow":
            problems.append(f"the running guard allowed device {dev.get('id', '?')} on locked "
                            f"port {name} (run/status.json)")
    if live:
        evidence.append(f"running guard: {len(live)} device(s) in run/status.json, none "
                        "allowed on a locked port" if not problems else
                        f"running guard: {len(live)} device(s) in run/status.json")
    if problems:
        return failed(*scan.limit(problems), *evidence)
    return passed(*evidence)

