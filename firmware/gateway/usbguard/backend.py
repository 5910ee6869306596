"""Enforcement backends: sysfs writes (default) or the usbguard daemon when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

from firmware.core.errors import StateError
from firmware.gateway.usbguard.sysfs import ROOT_HUB, Sysfs

_LIST_LINE = re.compile(r'^\s*([0-9]+): (allow|block|reject) .*via-port "([^"]*)"')


class SysfsBackend:
    """Authorise devices and interfaces by writing sysfs `authorized` / `remove`."""

    name = "sysfs"

    def __init__(self, sysfs: Sysfs) -> None:
        self.sysfs = sysfs

    def lockdown(self) -> list[str]:
        """Default-deny on every bus."""
        return self.sysfs.lockdown()

    def apply_device(self, name: str, decision: str) -> list[str]:
        """Authorise, de-authorise or remove one device; returns what was written."""
        if ROOT_HUB.match(name):
            return []  # root hubs are never touched
        done = []
        if self.sysfs.set_authorized(name, decision == "allow"):
            done.append("%s/authorized=%d" % (name, decision == "allow"))
        if decision == "reject" and self.sysfs.remove(name):
            done.append(name + "/remove=1")
        return done

    def apply(self, result: dict[str, Any]) -> list[str]:
        """Enforce one evaluation result (interfaces first, then the device)."""
        name = result["device"]
        if ROOT_HUB.match(name):
            return []
        done = []
        if result["decision"] == "allow":
            for iface in result["interfaces"]:
                if self.sysfs.exists(iface["interface"]) and self.sysfs.set_authorized(
                        iface["interface"], iface["decision"] == "allow"):
                    done.append("%s/authorized=%d" % (iface["interface"],
                                                       iface["decision"] == "allow"))
        return done + self.apply_device(name, result["decision"])


class UsbguardDaemonBackend(SysfsBackend):
    """Device decisions through the usbguard daemon's CLI; interfaces still through sysfs
    (usbguard authorises whole devices only)."""

    name = "usbguard"

    def __init__(self, sysfs: Sysfs, binary: str = "usbguard") -> None:
        super().__init__(sysfs)
        self.binary = binary

    @staticmethod
    def available(binary: str = "usbguard") -> bool:
        """True when the usbguard CLI is installed and its daemon answers."""
        path = shutil.which(binary)
        if path is None:
            return False
        try:
            return subprocess.run([path, "list-devices"], capture_output=True,
                                  timeout=5).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _run(self, *args: str) -> str:
        try:
            proc = subprocess.run([self.binary, *args], capture_output=True, text=True,
                                  timeout=10)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise StateError("usbguard %s failed: %s" % (args[0], exc))
        if proc.returncode != 0:
            raise StateError("usbguard %s failed: %s" % (args[0], proc.stderr.strip()[:200]))
        return proc.stdout

    def daemon_id(self, name: str) -> str | None:
        """The daemon's numeric id for the device on sysfs port NAME."""
        for line in self._run("list-devices").splitlines():
            m = _LIST_LINE.match(line)
            if m and m.group(3) == name:
                return m.group(1)
        return None

    def apply_device(self, name: str, decision: str) -> list[str]:
        """Ask the daemon to allow, block or reject the device."""
        if ROOT_HUB.match(name):
            return []
        dev_id = self.daemon_id(name)
        if dev_id is None:
            # The daemon does not know it (yet): fall back to sysfs rather than leave it open.
            return super().apply_device(name, decision)
        self._run(decision + "-device", dev_id)
        return ["usbguard %s-device %s (%s)" % (decision, dev_id, name)]
