"""A scratch sysfs-shaped USB tree and fixture devices for the USB self-test checks.

Root hubs, devices with descriptors, interface directories instantiated once a device is
authorised (as the kernel does), ``bus/usb/devices`` links. Nothing here touches the real
``/sys``. The test suite's builder (``tests/usb/sysfs_tree.py``) extends this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.core.usbdesc import build_descriptors

# (vid, pid, device class, interfaces (class, subclass, protocol), product, serial)
STICK = (0x0781, 0x5567, 0, [(8, 6, 0x50)], "Cruzer Blade", "4C530001234")
KEYBOARD = (0x046D, 0xC31C, 0, [(3, 1, 1), (3, 0, 0)], "USB Keyboard", "")
NIC = (0x0BDA, 0x8153, 0, [(0xFF, 0xFF, 0), (2, 6, 0), (0x0A, 0, 0)], "USB 10/100/1000 LAN",
       "000001")
HUB = (0x2109, 0x3431, 9, [(9, 0, 0)], "USB2.0 Hub", "")
FIXTURES = (("mass-storage stick", STICK), ("keyboard", KEYBOARD), ("network adapter", NIC))


def vendor_device(usb_id: str, product: str) -> tuple[Any, ...]:
    """A vendor-class device with the given ``vvvv:pppp`` id (the board's needed dongle)."""
    vid, pid = (int(x, 16) for x in usb_id.split(":"))
    return (vid, pid, 0, [(0xFF, 0, 0)], product, "")


class FixtureTree:
    """A tmp directory shaped like /sys for USB (one xHCI root hub per bus)."""

    def __init__(self, root: Path, buses: int = 1) -> None:
        self.root = root
        self.links = root / "bus" / "usb" / "devices"
        self.links.mkdir(parents=True)
        self.pci = root / "devices" / "pci0000:00" / "0000:00:14.0"
        self.dirs: dict[str, Path] = {}
        for b in range(1, buses + 1):
            self._root_hub(b)

    @staticmethod
    def _write(d: Path, **attrs: str) -> None:
        for k, v in attrs.items():
            (d / k).write_text(v + "\n")

    def _link(self, name: str, d: Path) -> None:
        (self.links / name).symlink_to(d)
        self.dirs[name] = d

    def _root_hub(self, bus: int) -> None:
        name = "usb%d" % bus
        d = self.pci / name
        d.mkdir(parents=True)
        self._write(d, idVendor="1d6b", idProduct="0002", bDeviceClass="09",
                    product="xHCI Host Controller", serial="0000:00:14.0", authorized="1",
                    authorized_default="1", interface_authorized_default="1",
                    bConfigurationValue="1")
        (d / "descriptors").write_bytes(build_descriptors(0x1D6B, 2, 9, [(9, 0, 0)]))
        self._link(name, d)
        iface = d / ("%d-0:1.0" % bus)
        iface.mkdir()
        self._write(iface, bInterfaceClass="09", bInterfaceSubClass="00",
                    bInterfaceProtocol="00", authorized="1")
        self._link(iface.name, iface)

    def has(self, name: str) -> bool:
        """Whether a device or interface is present."""
        return name in self.dirs

    def insert(self, port: str, spec: tuple[Any, ...], descriptors: bytes | None = None,
               with_interfaces: bool | None = None) -> str:
        """Plug a device into a port (``1-4``, ``1-1.3``); returns its sysfs name.

        ``descriptors`` replaces the ones built from the spec (malformed-descriptor probes);
        ``with_interfaces`` overrides whether interface directories appear at once (by default
        they do when the bus authorises new devices).
        """
        vid, pid, dclass, ifaces, product, serial = spec
        bus = port.split("-")[0]
        parent = port.rsplit(".", 1)[0] if "." in port else "usb" + bus
        d = self.dirs[parent] / port
        d.mkdir()
        authorized = self.read("usb" + bus, "authorized_default")
        attrs = {"idVendor": "%04x" % vid, "idProduct": "%04x" % pid,
                 "bDeviceClass": "%02x" % dclass, "product": product, "authorized": authorized,
                 "bConfigurationValue": "1", "remove": ""}
        if serial:
            attrs["serial"] = serial
        self._write(d, **attrs)
        if descriptors is None:
            descriptors = build_descriptors(vid, pid, dclass, ifaces)
        (d / "descriptors").write_bytes(descriptors)
        self._link(port, d)
        if with_interfaces if with_interfaces is not None else authorized == "1":
            self.add_interfaces(port, ifaces)
        return port

    def add_interfaces(self, port: str, ifaces: list[tuple[int, int, int]]) -> list[str]:
        """Instantiate interface directories (the kernel does so once a device is authorised)."""
        bus = port.split("-")[0]
        default = self.read("usb" + bus, "interface_authorized_default")
        names = []
        for num, (c, s, p) in enumerate(ifaces):
            name = "%s:1.%d" % (port, num)
            if name in self.dirs:
                continue
            d = self.dirs[port] / name
            d.mkdir()
            self._write(d, bInterfaceClass="%02x" % c, bInterfaceSubClass="%02x" % s,
                        bInterfaceProtocol="%02x" % p, authorized=default)
            self._link(name, d)
            names.append(name)
        return names

    def unplug(self, port: str) -> None:
        """Remove a device, its interfaces and anything behind it."""
        import shutil

        target = self.dirs[port]
        for name in [n for n in self.dirs if n == port or n.startswith((port + ":", port + "."))]:
            (self.links / name).unlink()
            del self.dirs[name]
        shutil.rmtree(target)

    def interfaces(self, port: str) -> list[str]:
        """Interface names present under a device."""
        return sorted(n for n in self.dirs if n.startswith(port + ":"))

    def read(self, name: str, attr: str = "authorized") -> str:
        """An attribute's current value ('' when absent)."""
        try:
            return (self.links / name / attr).read_text().strip()
        except OSError:
            return ""
