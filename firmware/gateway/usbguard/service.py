"""The gateway's USB guard service: default deny, uevent-driven, maintenance windows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from firmware.core.errors import MamoriError
from firmware.core.events import Event
from firmware.core.usbmaint import MaintenanceWindows
from firmware.core.usbpolicy import BoardUsb, evaluate, refused
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.usbguard.backend import SysfsBackend, UsbguardDaemonBackend
from firmware.gateway.usbguard.store import RULES_FILE, PolicyStore, windows_locked
from firmware.gateway.usbguard.sysfs import Sysfs, device_of
from firmware.gateway.usbguard.uevent import NetlinkSource, usb_name

log = logging.getLogger("mamori.usb")


class UeventSource(Protocol):
    """Where uevents come from (netlink on a board, a queue in tests)."""

    def events(self) -> Any:
        """Async iterator of parsed uevents."""

    def close(self) -> None:
        """Release the source."""


def evidence(device: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """What an operator needs to recognise a refused device (no secrets: descriptors only)."""
    return {
        "device": device.get("name", ""), "id": device.get("id", ""),
        "serial": device.get("serial", ""), "product": device.get("product", ""),
        "manufacturer": device.get("manufacturer", ""), "port": device.get("name", ""),
        "interfaces": [{"interface": i["interface"], "types": i["types"],
                        "decision": i["decision"], "reason": i["reason"]}
                       for i in result["interfaces"]],
        "decision": result["decision"], "rule": result["rule"], "via": result["via"],
    }


class UsbGuardService(Service):
    """Keeps every USB port default-deny and enforces the policy on each insertion."""

    name = "usb"

    def __init__(self, gw: Gateway, sysfs_root: Path | str = "/sys",
                 source: UeventSource | None = None, clock: Callable[[], float] = time.time,
                 backend: SysfsBackend | None = None, tick: float = 1.0) -> None:
        super().__init__(gw)
        self.sysfs = Sysfs(sysfs_root)
        self.board = BoardUsb(gw.board.to_dict())
        self.store = PolicyStore(gw.state_dir / RULES_FILE, self.board)
        self.windows = MaintenanceWindows(clock, self.board.locked)
        self.source = source
        self.backend = backend or self._pick_backend()
        self.tick = tick
        self.results: dict[str, dict[str, Any]] = {}
        self.counts = {"allowed": 0, "refused": 0, "errors": 0}
        self._tasks: list[asyncio.Task[None]] = []
        self._known_windows: set[str] = set()

    def _pick_backend(self) -> SysfsBackend:
        if str(self.sysfs.root) == "/sys" and UsbguardDaemonBackend.available():
            return UsbguardDaemonBackend(self.sysfs)
        return SysfsBackend(self.sysfs)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Lock every bus down, load the policy, decide every present device, then listen."""
        self.backend.lockdown()
        self._reload_policy(initial=True)
        self._sync_windows()
        self.enforce_all(action="present")
        if self.source is None:
            nl = NetlinkSource()
            try:
                nl.open()
                self.source = nl
            except OSError as exc:
                log.warning("no uevent source (%s): only periodic rescans", exc)
        source = self.source
        if source is not None:
            self._tasks.append(self.gw.spawn("usb.uevents", lambda: self._listen(source)))
        self._tasks.append(self.gw.spawn("usb.windows", self._housekeeping))

    async def stop(self) -> None:
        """Stop listening; devices keep their authorisation (default deny stays on)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self.source is not None:
            self.source.close()

    def status(self) -> dict[str, Any]:
        """Policy, backend, windows and per-device decisions for `mamori-gateway status`."""
        return {
            "backend": self.backend.name, "sysfs": str(self.sysfs.root),
            "policy": {"source": self.store.policy.source, "rules": len(self.store.policy.rules),
                       "sha256": self.store.digest, "last_error": self.store.error},
            "maintenance": self.windows.active(), "counts": dict(self.counts),
            "devices": {n: {"id": r["id"], "decision": r["decision"], "via": r["via"],
                            "refused_interfaces": [i["interface"] for i in r["interfaces"]
                                                   if i["decision"] != "allow"]}
                        for n, r in sorted(self.results.items())},
        }

    # -- decisions -----------------------------------------------------------------------
    def decide(self, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Read and evaluate one device (no enforcement)."""
        device = self.sysfs.read_device(name)
        return device, evaluate(device, self.store.policy, self.windows.active())

    def handle(self, name: str, action: str = "add") -> dict[str, Any] | None:
        """Evaluate and enforce one device, emitting the events; None if it vanished."""
        if not self.sysfs.exists(name):
            self.results.pop(name, None)
            return None
        try:
            device, result = self.decide(name)
            self.backend.apply(result)
        except MamoriError as exc:
            self.counts["errors"] += 1
            self._emit("usb.error", "warning", action, name, "error", str(exc), {})
            with contextlib.suppress(MamoriError):
                self.backend.apply_device(name, "block")
            return None
        previous = self.results.get(name)
        self.results[name] = result
        if previous is not None and action == "reevaluate" and _same(previous, result):
            return result
        self._report(device, result, action)
        return result

    def _report(self, device: dict[str, Any], result: dict[str, Any], action: str) -> None:
        ev = evidence(device, result)
        name = result["device"]
        if refused(result):
            self.counts["refused"] += 1
            outcome = result["decision"] if result["decision"] != "allow" else "partial"
            self._emit("rogue.usb", "alert", action, name, outcome, result["rule"], ev)
        else:
            self.counts["allowed"] += 1
        if result["decision"] == "allow" and result["via"] == "window":
            w: dict[str, Any] = next(
                (x for x in self.windows.active() if x["id"] == result["window"]), {})
            self._emit("usb.maintenance.use", "notice", action, name, "allow",
                       result["rule"], ev, principal=w.get("principal", ""))
        elif result["decision"] == "allow" and not refused(result) and result["via"] != \
                "root-hub":
            self._emit("usb.allowed", "info", action, name, "allow", result["rule"], ev)

    def enforce_all(self, action: str = "reevaluate") -> list[dict[str, Any]]:
        """Re-decide every present device (start, policy change, window open or close)."""
        out = []
        for name in self.sysfs.names():
            r = self.handle(name, action)
            if r is not None:
                out.append(r)
        for gone in set(self.results) - set(self.sysfs.names()):
            self.results.pop(gone, None)
        return out

    def on_uevent(self, env: dict[str, str]) -> None:
        """React to one kernel uevent."""
        name = usb_name(env)
        dev = device_of(name) if name else None
        if dev is None:
            return
        if env.get("ACTION") == "remove":
            if dev == name:
                self.results.pop(dev, None)
            return
        if env.get("ACTION") in ("add", "bind", "change"):
            self.handle(dev, "insert" if env.get("ACTION") == "add" and dev == name else
                        "reevaluate")

    # -- policy and windows --------------------------------------------------------------
    def _reload_policy(self, initial: bool = False) -> bool:
        state = self.store.reload()
        if state == "loaded":
            self._emit("usb.policy.loaded", "notice", "load", str(self.store.path), "ok", "",
                       {"rules": len(self.store.policy.rules), "sha256": self.store.digest})
            return True
        if state == "invalid":
            self._emit("usb.policy.invalid", "warning", "load", str(self.store.path),
                       "refused", self.store.error,
                       {"kept": self.store.policy.source, "sha256": self.store.digest})
        elif state == "missing":
            self._emit("usb.policy.missing", "warning", "load", str(self.store.path),
                       "kept-last-good", "rule file removed; last good policy kept", {})
        return False

    def _sync_windows(self) -> bool:
        """Load windows opened by the CLI, drop expired ones; True if the set changed."""
        try:
            with windows_locked(self.gw.state_dir, self.windows) as ws:
                closed = ws.expire()
        except MamoriError as exc:
            self._emit("usb.maintenance.invalid", "warning", "load", "maintenance", "refused",
                       str(exc), {})
            self.windows.windows = []
            closed = []
        changed = False
        for w in closed:
            self._known_windows.discard(w["id"])
            changed = True
            self._emit("usb.maintenance.close", "notice", "close", w["port"] or "classes",
                       "expired", "window time is up", dict(w), principal=w["principal"])
        for w in self.windows.active():
            if w["id"] not in self._known_windows:
                self._known_windows.add(w["id"])
                changed = True
                self._emit("usb.maintenance.open", "warning", "open", w["port"] or "classes",
                           "ok", w.get("reason", ""), dict(w), principal=w["principal"])
        for wid in list(self._known_windows):
            if wid not in {w["id"] for w in self.windows.active()}:
                self._known_windows.discard(wid)
                changed = True
                self._emit("usb.maintenance.close", "notice", "close", wid, "closed",
                           "closed by operator", {"id": wid})
        return changed

    def housekeeping_once(self) -> None:
        """One tick: reload the policy and windows; re-decide devices when either changed."""
        changed = self._reload_policy()
        changed = self._sync_windows() or changed
        if changed:
            self.enforce_all()

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.housekeeping_once()
            except Exception:
                log.exception("usb housekeeping failed")

    async def _listen(self, source: UeventSource) -> None:
        async for env in source.events():
            try:
                self.on_uevent(env)
            except Exception:
                log.exception("usb uevent handling failed")
            finally:
                q = getattr(source, "queue", None)
                if q is not None:
                    q.task_done()

    def _emit(self, kind: str, severity: str, action: str, target: str, result: str,
              reason: str, params: dict[str, Any], principal: str = "") -> None:
        self.gw.emit(Event(kind, severity=severity, source="usb", principal=principal,
                           action=action, target=target, result=result, reason=reason,
                           params=params))


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["decision"] == b["decision"] and [i["decision"] for i in a["interfaces"]] == [
        i["decision"] for i in b["interfaces"]]
