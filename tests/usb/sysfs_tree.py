"""Build sysfs-shaped USB trees (devices, interfaces, descriptors, bus/usb/devices links)."""

from __future__ import annotations

from pathlib import Path

from firmware.core.usbdesc import build_descriptors

Iface = tuple[int, int, int]

# (vid, pid, device class, interfaces, product, serial)
STICK = (0x0781, 0x5567, 0, [(8, 6, 0x50)], "Cruzer Blade", "4C530001234")
KEYBOARD = (0x046D, 0xC31C, 0, [(3, 1, 1), (3, 0, 0)], "USB Keyboard", "")
NIC = (0x0BDA, 0x8153, 0, [(0xFF, 0xFF, 0), (2, 6, 0), (0x0A, 0, 0)], "USB 10/100/1000 LAN",
       "000001")
COMPOSITE = (0x1234, 0xABCD, 0, [(3, 1, 1), (8, 6, 0x50)], "Keyboard+Disk", "X1")
ZIGBEE = (0x1A86, 0x55D4, 0, [(0xFF, 0, 0)], "SONOFF Zigbee 3.0 USB Dongle Plus V2", "")
HUB = (0x2109, 0x3431, 9, [(9, 0, 0)], "USB2.0 Hub", "")


class SysfsTree:
    """A tmp directory shaped like /sys for USB; the kernel's behaviour is mimicked where the
    guard depends on it (authorized_default applies to new devices; unauthorised devices
    have no interface directories)."""

    def __init__(self, root: Path, buses: int = 1) -> None:
        self.root = root
        self.links = root / "bus" / "usb" / "devices"
        self.links.mkdir(parents=True)
        self.pci = root / "devices" / "pci0000:00" / "0000:00:14.0"
        self.dirs: dict[str, Path] = {}
        for b in range(1, buses + 1):
            self._root_hub(b)

    def _write(self, d: Path, **attrs: str) -> None:
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

    def devpath(self, name: str) -> str:
        """DEVPATH of a device as the kernel reports it in uevents."""
        return "/" + str(self.dirs[name].relative_to(self.root))

    def insert(self, port: str, spec: tuple, descriptors: bytes | None = None,
               with_interfaces: bool | None = None) -> str:
        """Plug a device into a port (``1-4``, ``1-1.3``); returns its sysfs name."""
        vid, pid, dclass, ifaces, product, serial = spec
        bus = port.split("-")[0]
        parent_name = port.rsplit(".", 1)[0] if "." in port else "usb" + bus
        d = self.dirs[parent_name] / port
        d.mkdir()
        authorized = (self.dirs["usb" + bus] / "authorized_default").read_text().strip()
        attrs = {"idVendor": "%04x" % vid, "idProduct": "%04x" % pid,
                 "bDeviceClass": "%02x" % dclass, "product": product, "authorized": authorized,
                 "bConfigurationValue": "1", "remove": ""}
        if serial:
            attrs["serial"] = serial
        self._write(d, **attrs)
        (d / "descriptors").write_bytes(
            descriptors if descriptors is not None else build_descriptors(vid, pid, dclass,
                                                                          ifaces))
        self._link(port, d)
        if with_interfaces if with_interfaces is not None else authorized == "1":
            self.add_interfaces(port, ifaces)
        return port

    def add_interfaces(self, port: str, ifaces: list[Iface]) -> list[str]:
        """Instantiate interface directories (what the kernel does once a device is
        authorised); their authorized value follows interface_authorized_default."""
        bus = port.split("-")[0]
        default = (self.dirs["usb" + bus] / "interface_authorized_default").read_text().strip()
        names = []
        for num, (c, s, p) in enumerate(ifaces):
            name = "%s:1.%d" % (port, num)
            d = self.dirs[port] / name
            d.mkdir()
            self._write(d, bInterfaceClass="%02x" % c, bInterfaceSubClass="%02x" % s,
                        bInterfaceProtocol="%02x" % p, authorized=default)
            self._link(name, d)
            names.append(name)
        return names

    def unplug(self, port: str) -> None:
        """Remove a device and its interfaces."""
        import shutil

        for name in [n for n in self.dirs if n == port or n.startswith(port + ":")
                     or n.startswith(port + ".")]:
            (self.links / name).unlink()
            del self.dirs[name]
        shutil.rmtree(self.root / self.devpath_of_dir(port))

    def devpath_of_dir(self, port: str) -> Path:
        """Path of the device directory relative to the root (after unplug bookkeeping)."""
        bus = port.split("-")[0]
        parts = port.split("-")[1].split(".")
        d = self.pci / ("usb" + bus)
        acc = bus + "-" + parts[0]
        d = d / acc
        for p in parts[1:]:
            acc = acc + "." + p
            d = d / acc
        return d.relative_to(self.root)

    def read(self, name: str, attr: str = "authorized") -> str:
        """An attribute's current value."""
        return (self.links / name / attr).read_text().strip()


def standard_tree(root: Path) -> SysfsTree:
    """The must-show scene on the sim board: dongle on 1-2, four rogue devices on 1-4..1-7."""
    t = SysfsTree(root)
    t.insert("1-2", ZIGBEE)
    t.insert("1-4", STICK)
    t.insert("1-5", KEYBOARD)
    t.insert("1-6", NIC)
    t.insert("1-7", COMPOSITE)
    return t
