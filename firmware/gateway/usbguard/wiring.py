"""Which USB guard the composition root runs for a board (CPython)."""

from __future__ import annotations

from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.usbguard.service import UsbGuardService


def usb_services(gw: Gateway) -> list[Service]:
    """The USB guard on real CPython boards (/sys); on the sim board only when a sysfs-shaped
    tree is configured (``config.usb.sysfs``): the host's own USB is never touched."""
    root: str | None = str(gw.config.usb.sysfs) if gw.config.usb.sysfs else None
    if root is None and not gw.board.is_sim and gw.board.runtime == "cpython":
        root = "/sys"
    if root is None:
        return []
    return [UsbGuardService(gw, root)]
