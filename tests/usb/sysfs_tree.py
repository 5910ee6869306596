"""Build sysfs-shaped USB trees (devices, interfaces, descriptors, bus/usb/devices links).

The builder is the firmware's own self-test fixture (``firmware.gateway.selftest.usbfixture``);
the tests add uevent DEVPATHs, a strict attribute read and the must-show scene.
"""

from __future__ import annotations

from pathlib import Path

from firmware.gateway.selftest.usbfixture import HUB, KEYBOARD, NIC, STICK, FixtureTree

__all__ = ["COMPOSITE", "HUB", "KEYBOARD", "NIC", "STICK", "ZIGBEE", "SysfsTree",
           "standard_tree"]

# (vid, pid, device class, interfaces, product, serial)
COMPOSITE = (0x1234, 0xABCD, 0, [(3, 1, 1), (8, 6, 0x50)], "Keyboard+Disk", "X1")
ZIGBEE = (0x1A86, 0x55D4, 0, [(0xFF, 0, 0)], "SONOFF Zigbee 3.0 USB Dongle Plus V2", "")


class SysfsTree(FixtureTree):
    """A tmp directory shaped like /sys for USB; the kernel's behaviour is mimicked where the
    guard depends on it (authorized_default applies to new devices; unauthorised devices
    have no interface directories)."""

    def devpath(self, name: str) -> str:
        """DEVPATH of a device as the kernel reports it in uevents."""
        return "/" + str(self.dirs[name].relative_to(self.root))

    def read(self, name: str, attr: str = "authorized") -> str:
        """An attribute's current value (a missing attribute raises: tests must not guess)."""
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
