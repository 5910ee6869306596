"""USB: rule files an operator installs, and what a plugged-in device reports about itself.

The first input byte picks the parser: a rule file (``Policy.parse`` against the sim board), a
device's raw descriptors (``interfaces_from_descriptors``, then the real ``evaluate`` against a
learned policy), a kernel uevent. Property: a decision is always allow or block with a reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core.usbdesc import build_descriptors, interfaces_from_descriptors
from firmware.core.usbpolicy import BoardUsb, Policy, evaluate, learn
from firmware.gateway.usbguard.uevent import encode_uevent, parse_uevent

MAX_LEN = 8192
RULES = ('allow id 1a86:55d4 serial "a \\"q\\" \\\\ b" name "Dongle" via-port "1-2" '
         'with-interface ff:00:00\n'
         "# comment\n\n  block with-interface { 08:*:* 03:00:* }\r\n"
         "allow id 046d:* with-interface one-of { 03:01:01 03:01:02 }\n"
         "reject via-port \"1-3\"\n")


def _device(name: str, raw: bytes, ident: str = "0781:5567") -> dict[str, Any]:
    return {"name": name, "id": ident, "serial": "4C530001", "product": "Stick",
            "manufacturer": "Acme", "device_class": "00", "connect_type": "hotplug",
            "authorized": "0", "interfaces": interfaces_from_descriptors(name, raw, 1)}


def seeds(workdir: Path) -> list[bytes]:
    """Rules (handwritten and learned), descriptors of common devices, a uevent."""
    storage = build_descriptors(0x0781, 0x5567, 0, [(8, 6, 0x50)])
    hid = build_descriptors(0x046D, 0xC31C, 0, [(3, 1, 1), [(3, 0, 0), (3, 1, 2)]])
    learned = learn([_device("2-1", storage), _device("2-3", hid, "046d:c31c")])
    return [b"\x00" + RULES.encode(), b"\x00" + learned.encode(), b"\x01" + storage,
            b"\x01" + hid, b"\x02" + encode_uevent("add", "/devices/pci0/usb1/1-1",
                                                   SUBSYSTEM="usb", DEVTYPE="usb_device")]


def setup(workdir: Path) -> Callable[[bytes], None]:
    """The sim board's USB constraints and a learned policy to decide against."""
    board = BoardUsb(load_board("sim").to_dict())
    storage = build_descriptors(0x0781, 0x5567, 0, [(8, 6, 0x50)])
    policy = Policy.parse(learn([_device("2-1", storage)], board), "learned.rules", board)

    def one(data: bytes) -> None:
        if not data:
            return
        which, body = data[0] % 3, data[1:]
        if which == 0:
            Policy.parse(body.decode("utf-8", "replace"), "fuzz.rules", board)
        elif which == 1:
            for port in ("2-1", "1-1", "1-2"):
                res = evaluate(_device(port, body), policy)
                if res["decision"] not in ("allow", "block", "reject") or not (
                        res.get("rule") or res.get("via")):
                    raise AssertionError("decision without a verdict and reason: %r" % res)
        else:
            parse_uevent(body)
    return one
