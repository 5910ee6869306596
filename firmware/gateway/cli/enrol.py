"""`mamori-gateway enrol`: the CSR flow -- make the gateway's keys here, write the request."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from firmware.gateway.identity.install import enrol_request
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def register(sub: Any) -> None:
    """Add the `enrol` command."""
    p = sub.add_parser("enrol")
    add_state_dir_arg(p)
    p.add_argument("--id", required=True, metavar="ID", help="the gateway id to request")
    p.add_argument("--out", type=Path, required=True, metavar="REQ.json",
                   help="where to write the request (public: CSR + BLE public key)")
    p.add_argument("--board", default=None, help="board profile (key-store seam), e.g. rpi4")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_enrol)


def _enrol(args: argparse.Namespace) -> int:
    from firmware.common.boards import load_board

    if not ID_RE.match(args.id):
        raise ConfigError("gateway id %r is not valid" % args.id[:80],
                          hint="use 1-63 letters, digits, '.', '_' or '-'")
    if args.out.exists():
        raise ConfigError("already exists", str(args.out), hint="choose another --out")
    board = load_board(args.board) if args.board else None
    state_dir = resolve(args.state_dir, args.board or "sim")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    res = enrol_request(state_dir, args.id, args.out, board)
    emit(res, args.json, "enrolment request for %s written to %s (keys stay on this gateway)"
         % (res["gateway_id"], res["request"]))
    return 0
