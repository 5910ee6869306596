"""`mamori boards list|show`: the board profiles Mamori supports."""

from __future__ import annotations

import argparse
from typing import Any

from firmware.common.boards import boards_dir, list_boards, load_board
from firmware.common.cli import emit, plain


def register(sub: Any) -> None:
    """Add the `boards` command group."""
    p = sub.add_parser("boards")
    bsub = p.add_subparsers(dest="boards_cmd", metavar="ACTION")
    bsub.required = True
    lp = bsub.add_parser("list", help="list board profiles")
    lp.add_argument("--json", action="store_true", help="machine-readable output")
    lp.set_defaults(func=_list)
    sp = bsub.add_parser("show", help="show one board profile")
    sp.add_argument("name", metavar="NAME")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    rows = []
    for name in list_boards():
        b = load_board(name)
        rows.append({"name": name, "runtime": b.runtime, "description": b.description})
    text = "\n".join("%-12s %-12s %s" % (r["name"], r["runtime"], r["description"]) for r in rows)
    emit({"boards": rows, "directory": str(boards_dir())}, args.json, text)
    return 0


def _show(args: argparse.Namespace) -> int:
    b = load_board(args.name)
    lines = [
        "%s: %s" % (b.name, b.description),
        "  runtime      %s" % b.runtime,
        "  cpu          %s (%s, %d cores), RAM %d KiB"
        % (b.cpu.class_, b.cpu.arch, b.cpu.cores, b.memory.ram_kib),
        "  storage      state %s, slots %s, boot %s"
        % (b.storage.state_dir, ", ".join(b.storage.slots) or "-", b.storage.boot),
    ]
    for i in b.network:
        lines.append("  network      %-6s %-4s %s" % (i.name, i.role, i.kind))
    z, ble = b.radios.zigbee, b.radios.ble
    lines.append("  radios       BLE %s, Zigbee %s"
                 % (ble.backend + (" on " + ble.hci_transport if ble.hci_transport is not None
                                   else "") if ble else "no",
                    "%s (%s) on %s" % (z.radio_type, z.dongle or "coordinator",
                                       z.serial_port) if z else "no"))
    for p in b.usb_ports:
        lines.append("  usb port     %-8s %s" % (p.path, "needed: " + (p.purpose or "")
                                                 + " (" + (p.allow or "") + ")" if p.needed
                                                 else "not needed: disabled"))
    lines.append("  console      %s (login in production: %s)"
                 % (b.console.serial, plain(b.console.login_in_production)))
    s = b.security
    lines.append("  security     secure element %s, crypto accel %s, RTC %s"
                 % (s.secure_element, ", ".join(s.crypto_accel) or "none", plain(s.rtc)))
    emit(b.to_dict(), args.json, "\n".join(lines))
    return 0
