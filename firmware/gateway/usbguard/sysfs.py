"""Read USB devices from, and write authorisation to, a sysfs tree whose root is a parameter."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from firmware.core.errors import MamoriError, StateError
from firmware.core.usbdesc import interfaces_from_descriptors

ROOT_HUB = re.compile(r"^usb[0-9]{1,3}$")
DEVICE = re.compile(r"^[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}$")
INTERFACE = re.compile(r"^[0-9]{1,3}-[0-9]{1,3}(\.[0-9]{1,3}){0,6}:[0-9]{1,3}\.[0-9]{1,3}$")
MAX_ATTR = 4096


def device_of(name: str) -> str | None:
    """The device a sysfs name belongs to (itself, or the device of an interface), or None."""
    if ROOT_HUB.match(name) or DEVICE.match(name):
        return name
    if INTERFACE.match(name):
        dev = name.split(":")[0]
        return None if dev.endswith("-0") else dev  # 1-0:1.0 is a root hub's interface
    return None


class Sysfs:
    """The USB part of sysfs under ``root`` (``/sys`` on a board, a tmp tree in tests)."""

    def __init__(self, root: Path | str = "/sys") -> None:
        self.root = Path(root)
        self.devices_dir = self.root / "bus" / "usb" / "devices"

    def _path(self, name: str) -> Path:
        if not (device_of(name) or INTERFACE.match(name)):
            raise StateError("not a USB sysfs name: %r" % name)
        return self.devices_dir / name

    def _read(self, path: Path) -> str:
        try:
            with open(path, "rb") as f:
                return f.read(MAX_ATTR).decode("utf-8", "backslashreplace").strip()
        except OSError:
            return ""

    def _write(self, path: Path, value: str) -> None:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as exc:
            raise StateError("cannot write %s: %s" % (path, exc.strerror),
                             "the USB guard needs root on the board")

    def names(self) -> list[str]:
        """Sysfs names of every USB device present (root hubs first, then by name)."""
        if not self.devices_dir.is_dir():
            raise StateError("no USB sysfs under %s" % self.root,
                             "pass --sysfs pointing at /sys or a sysfs-shaped tree")
        out = [p.name for p in self.devices_dir.iterdir() if device_of(p.name) == p.name]
        return sorted(out, key=lambda n: (not n.startswith("usb"), n))

    def buses(self) -> list[str]:
        """The root hubs (one per bus)."""
        return [n for n in self.names() if ROOT_HUB.match(n)]

    def exists(self, name: str) -> bool:
        """True when the device or interface is present."""
        return self._path(name).exists()

    def read_device(self, name: str) -> dict[str, Any]:
        """A device in the core's plain-dict form (see firmware.core.usbpolicy)."""
        d = self._path(name)
        if not d.is_dir():
            raise StateError("USB device %s is not present" % name)
        vid = self._read(d / "idVendor").lower()
        pid = self._read(d / "idProduct").lower()
        dev: dict[str, Any] = {
            "name": name, "id": vid + ":" + pid, "serial": self._read(d / "serial"),
            "product": self._read(d / "product"),
            "manufacturer": self._read(d / "manufacturer"),
            "device_class": self._read(d / "bDeviceClass").lower(),
            "connect_type": self._read(d / "port" / "connect_type"),
            "authorized": self._read(d / "authorized"), "interfaces": [],
        }
        desc = d / "descriptors"
        if desc.is_file():
            try:
                cfg = int(self._read(d / "bConfigurationValue") or "1")
            except ValueError:
                cfg = 1
            try:
                prefix = name[3:] + "-0" if ROOT_HUB.match(name) else name
                dev["interfaces"] = interfaces_from_descriptors(prefix,
                                                                desc.read_bytes()[:65537], cfg)
            except MamoriError as exc:
                dev["error"] = "malformed descriptors (%s)" % exc.message
        else:
            dev["interfaces"] = self._interface_dirs(name, d)
        return dev

    def _interface_dirs(self, name: str, d: Path) -> list[dict[str, Any]]:
        ifaces = []
        for p in sorted(d.iterdir()):
            if not (p.name.startswith(name + ":") and INTERFACE.match(p.name)):
                continue
            t = ":".join(self._read(p / f).lower() or "??" for f in
                         ("bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol"))
            ifaces.append({"name": p.name, "type": t, "types": [t]})
        return ifaces

    def authorized(self, name: str) -> str:
        """Current `authorized` value of a device or interface ('' when absent)."""
        return self._read(self._path(name) / "authorized")

    def set_authorized(self, name: str, value: bool) -> bool:
        """Write `authorized` (device or interface) when it differs; True if written."""
        if ROOT_HUB.match(name) and not value:
            raise StateError("refusing to de-authorise root hub %s" % name)
        want = "1" if value else "0"
        path = self._path(name) / "authorized"
        if not path.exists():
            return False
        if self._read(path) == want:
            return False
        self._write(path, want)
        return True

    def remove(self, name: str) -> bool:
        """Logically disconnect a device (USBGuard's reject); True if the kernel was asked."""
        path = self._path(name) / "remove"
        if ROOT_HUB.match(name) or not path.exists():
            return False
        self._write(path, "1")
        return True

    def lockdown(self) -> list[str]:
        """authorized_default=0 and interface_authorized_default=0 on every bus."""
        done = []
        for bus in self.buses():
            for attr in ("authorized_default", "interface_authorized_default"):
                path = self._path(bus) / attr
                if path.exists() and self._read(path) != "0":
                    self._write(path, "0")
                    done.append(bus + "/" + attr)
        return done
