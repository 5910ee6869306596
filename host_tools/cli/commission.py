"""`mamori commission`: a blank board to a commissioned gateway in one resumable command."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit


def register(sub: Any) -> None:
    """Add the `commission` command."""
    p = sub.add_parser("commission", epilog=(
        "Steps: site and allowlist, gateway bundle, device credentials, install, wait for the "
        "gateway, first-use credential change, wait for the devices, live self-test, signed "
        "record. Run it again after a failure (or Ctrl-C): it resumes where it stopped. "
        "Exit 0 only with a stored, signed, all-pass commissioning record."))
    p.add_argument("site", type=Path, metavar="SITE",
                   help="the site directory (created when it does not exist)")
    p.add_argument("--board", required=True, help="the gateway's board profile (e.g. sim, rpi4)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", type=Path, metavar="STATE_DIR",
                       help="the gateway's state directory, reachable here (sim board, SD card)")
    where.add_argument("--admin", metavar="URL",
                       help="the gateway's local admin API, e.g. https://192.168.1.2:8443")
    p.add_argument("--devices", required=True, type=Path, metavar="FILE",
                   help="JSON or TOML list of devices: id, maker, model, transport "
                        "(optional: actions the platform may ask, ieee for Zigbee)")
    p.add_argument("--level", type=int, choices=(2, 3),
                   help="service level of a new site (default 3); an existing site keeps its")
    p.add_argument("--gateway-id", default="", metavar="ID",
                   help="the gateway's id (default: the site directory's name + '-gw')")
    p.add_argument("--name", default="", help="a new site's name (default: its directory's)")
    p.add_argument("--release", type=Path, metavar="REPO",
                   help="the release repository (or its 1.root.json): its trusted root goes "
                        "into the bundle, so the gateway accepts its first update")
    p.add_argument("--tickets", type=int, default=0, metavar="MINUTES",
                   help="also issue each device a one-time installation ticket (text and QR "
                        "code) valid this many minutes (1-60), presented at its first "
                        "connection; expired ones are issued again when the command resumes")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long to wait for the gateway and the devices (default 300)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.set_defaults(func=_commission)


def _commission(args: argparse.Namespace) -> int:
    from firmware.core.errors import ConfigError
    from host_tools.commission.flow import Commissioning, Options

    if not 0 < args.timeout <= 86400:
        raise ConfigError("--timeout must be 1 to 86400 seconds")
    if not 0 <= args.tickets <= 60:
        raise ConfigError("--tickets must be 1 to 60 minutes (0: no tickets)")
    if args.target is not None:
        from host_tools.commission.target import StateDirTarget

        target: Any = StateDirTarget(args.target, args.board)
        name = "target " + str(Path(args.target).resolve())
    else:
        from host_tools.commission.admin import AdminTarget

        target = AdminTarget(args.admin, args.board)
        name = "admin " + args.admin
    from firmware.common.boards import load_board

    load_board(args.board)  # a wrong board name is refused before anything is made
    opts = Options(site=args.site, board=args.board, target=target, target_name=name,
                   devices_file=args.devices, level=args.level, gateway_id=args.gateway_id,
                   site_name=args.name, release=args.release, timeout=args.timeout,
                   tickets=args.tickets)
    doc = Commissioning(opts).run()
    emit(doc, args.json)
    return 0 if doc["ok"] else 1
