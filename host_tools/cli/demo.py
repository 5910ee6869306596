"""`mamori demo`: make the demo house (site, devices, bundle) and run the sim gateway in it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from firmware.common.cli import emit


def register(sub: Any) -> None:
    """Add the `demo` command."""
    p = sub.add_parser("demo")
    p.add_argument("--state-dir", type=Path, required=True, metavar="DIR",
                   help="the sim gateway's state directory (the site goes beside it)")
    p.add_argument("--sim-devices", type=int, default=None, metavar="N",
                   help="run N simulated IP devices (0-1000) instead of the default house "
                        "(four IP devices, one BLE, one Zigbee)")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop by itself after this many seconds")
    p.add_argument("--prepare-only", action="store_true",
                   help="make the house and print where it is; do not start the gateway")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_demo)


def gateway_command(*args: str) -> list[str]:
    """`mamori-gateway ARGS` from the same installation as this command."""
    return [sys.executable, "-m", "firmware.gateway.cli.main", *args]


def _demo(args: argparse.Namespace) -> int:
    from firmware.gateway.runtime.statedir import resolve
    from host_tools.demo import ensure_demo_house, install_demo

    house = ensure_demo_house(resolve(args.state_dir), args.sim_devices)
    install_demo(args.state_dir, house)
    if args.prepare_only:
        emit({"house": str(house), "site": str(house.parent)}, args.json,
             "demo house: %s" % house)
        return 0
    cmd = gateway_command("run", "--board", "sim", "--state-dir", str(args.state_dir),
                          "--sim-house", str(house))
    if args.duration is not None:
        cmd += ["--duration", str(args.duration)]
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # noqa: S606 - become the gateway (same pid for the caller)
    return 1  # not reached
