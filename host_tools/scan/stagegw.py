"""Launcher of the staging gateway inside the lab (``python -m host_tools.scan.stagegw``).

It is ``mamori-gateway run --board sim`` with two differences the CLI cannot express yet: the
sim profile's loopback interfaces are replaced by the lab's veths (so the admin interface's
LAN-only bind check accepts the lab's LAN address) and the admin API is pinned to its declared
port. The names of the composed services are written to ``--services-file`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from firmware.common.boards import load_board
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.gateway.composition import build_services
from firmware.gateway.runtime import jsonlog
from firmware.gateway.runtime.config import AdminConfig, GatewayConfig
from firmware.gateway.runtime.gateway import Gateway


async def _main(args: argparse.Namespace) -> int:
    board = load_board("sim").with_changes(
        network=[{"name": args.wan_if, "role": "wan", "kind": "ethernet"},
                 {"name": args.lan_if, "role": "lan", "kind": "ethernet"}])
    cfg = GatewayConfig(board_name="sim", state_dir=args.state_dir, bundle=args.bundle,
                        lan_host=args.lan_host, lan_port=LAN_DEVICE_PORT)
    cfg.admin = AdminConfig(host=args.lan_host, port=ADMIN_HTTPS_PORT)
    gw = Gateway(cfg, board)
    services = build_services(gw)
    args.services_file.write_text(json.dumps([s.name for s in services]), encoding="utf-8")
    return await gw.run(services)


def main(argv: list[str] | None = None) -> int:
    """Run the staging gateway until terminated."""
    ap = argparse.ArgumentParser(prog="python -m host_tools.scan.stagegw")
    ap.add_argument("--state-dir", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--lan-host", required=True)
    ap.add_argument("--wan-if", default="eth0")
    ap.add_argument("--lan-if", default="wlan0")
    ap.add_argument("--services-file", type=Path, required=True)
    args = ap.parse_args(argv)
    args.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    jsonlog.setup("warning")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
