"""`mamori-gateway run`: start the gateway on a board profile."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.core.errors import ConfigError
from firmware.gateway.admin.bind import listen_address
from firmware.gateway.runtime import jsonlog
from firmware.gateway.runtime.config import AdminConfig, GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.runtime.hostcheck import require_matching_host
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve


def register(sub: Any) -> None:
    """Add the `run` command."""
    p = sub.add_parser("run")
    p.add_argument("--board", required=True, help="board profile name (e.g. sim, rpi4)")
    add_state_dir_arg(p)
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop by itself after this many seconds (unattended runs)")
    p.add_argument("--bundle", type=Path, default=None, metavar="FILE",
                   help="installation bundle from `mamori provision gateway`")
    p.add_argument("--broker", default=None, metavar="URL",
                   help="platform broker, e.g. mqtts://platform.example:8883")
    p.add_argument("--sim-house", type=Path, default=None, metavar="HOUSE_JSON",
                   help="sim board: run the demo house the installer made (`mamori demo`)")
    p.add_argument("--lan-host", default="127.0.0.1",
                   help="LAN listen address, or a board LAN interface (e.g. wlan0) whose "
                   "address to use")
    p.add_argument("--lan-port", type=int, default=None,
                   help="LAN listen port (default: the one this installation used before, "
                        "else the board's device port; sim: any free port, then kept; "
                        "0: any free port)")
    p.add_argument("--admin-port", type=int, default=None,
                   help="admin API port (default: as before, else 8443; sim: any free port, "
                        "then kept)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    p.add_argument("--log-format", choices=jsonlog.FORMATS, default=None,
                   help="stderr log lines: text (default on a terminal) or json (default "
                        "otherwise: journald, files, pipes)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    board = load_board(args.board)
    if args.duration is not None and not 0 < args.duration < 10 ** 9:
        raise ConfigError("--duration must be a positive number of seconds")
    for opt, port in (("--lan-port", args.lan_port), ("--admin-port", args.admin_port)):
        if port is not None and not 0 <= port < 65536:
            raise ConfigError("%s must be 0 to 65535, not %d" % (opt, port))
    if args.bundle is not None and not args.bundle.is_file():
        raise ConfigError("no installation bundle at %s" % args.bundle, "--bundle",
                          hint="make one with `mamori provision gateway` (or `mamori "
                               "commission`) and give its path")
    if args.sim_house is not None and not args.sim_house.is_file():
        raise ConfigError("no demo house at %s" % args.sim_house, "--sim-house",
                          hint="make it with `mamori demo --state-dir DIR`")
    require_matching_host(board)  # before the firewall or any other service touches the host
    state_dir = resolve(args.state_dir, args.board)
    jsonlog.setup(args.log_level, fmt=args.log_format or jsonlog.default_format())
    cfg = GatewayConfig(board_name=args.board, state_dir=state_dir, duration=args.duration,
                        bundle=args.bundle, broker=args.broker, sim_house=args.sim_house,
                        lan_host=listen_address(args.lan_host, board), lan_port=args.lan_port,
                        admin=AdminConfig(port=args.admin_port))
    return asyncio.run(_main(cfg, board))


async def _main(cfg: GatewayConfig, board: Board) -> int:
    from firmware.gateway.composition import build_services  # the whole gateway: only for run

    while True:
        gw = Gateway(cfg, board)
        code = await gw.run(build_services(gw))
        if not gw.restart:
            return code
        cfg.bundle = None  # installed: the next start reads the state directory
