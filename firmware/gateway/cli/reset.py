"""`mamori-gateway reset --resale`: hand the access log off, destroy the household's state, keep
the updated firmware (or finish a reset a power cut interrupted)."""

from __future__ import annotations

import argparse
from functools import partial
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.resalemarker import marker
from firmware.gateway.runtime.statedir import add_state_dir_arg, existing_state_dir
from firmware.gateway.update import status as update_status


def register(sub: Any) -> None:
    """Add the `reset` command."""
    p = sub.add_parser("reset")
    p.add_argument("--resale", action="store_true", required=True,
                   help="the reset to perform (resale: everything of the household)")
    p.add_argument("--board", default="sim", help="board profile (where the slots are)")
    add_state_dir_arg(p)
    p.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    p.add_argument("--broker", metavar="URL",
                   help="platform broker for the log hand-off (default: where the gateway "
                        "last reached it)")
    p.add_argument("--upload-timeout", type=float, default=120.0, metavar="S",
                   help="how long the hand-off may wait for the platform (default 120)")
    p.add_argument("--escrow-to", type=Path, metavar="DIR",
                   help="operator: write the log hand-off to DIR (a medium for the platform) "
                        "instead of the WAN; the admin credential on stdin, or --console")
    p.add_argument("--discard-log", metavar="REASON",
                   help="operator: destroy the access log without handing it off (REASON is "
                        "sealed into its last checkpoint)")
    p.add_argument("--console", action="store_true",
                   help="operator authority from root on the board's local console")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_reset)


def _reset(args: argparse.Namespace) -> int:
    from firmware.gateway.cli import loghandoff
    from firmware.gateway.cli.update import require_operator

    if not args.resale:
        raise ConfigError("only --resale is supported")
    if args.escrow_to is not None and args.discard_log is not None:
        raise ConfigError("--escrow-to and --discard-log exclude each other")
    board = load_board(args.board)
    state = existing_state_dir(args.state_dir, args.board)
    args.state_dir = state
    handoff = "escrow" if args.escrow_to is not None else (
        "discard" if args.discard_log is not None else "wan")
    before = marker(state) if state.is_dir() else None
    if handoff != "wan" and args.yes and before is None:
        require_operator(args, "a resale reset that hands the log off locally")  # operators only
    step0 = loghandoff.handoff(handoff, args.broker, args.escrow_to, args.discard_log or "",
                               args.upload_timeout)
    doc = resale_reset(state, board, step0, yes=args.yes,
                       firmware=partial(update_status, state, board))
    logs = doc.get("logs", {})
    how = {"wan": "handed to the platform over the WAN",
           "escrow": "escrowed to %s" % logs.get("file", "?"),
           "discard": "discarded by the operator: %s" % logs.get("reason", ""),
           "none": "nothing to hand off (%s)" % logs.get("reason", "")}.get(
        str(logs.get("handoff")), str(logs))
    text = ("resale reset %s: %d files destroyed, device key %s; firmware %s kept, %s\n"
            "access log: %s\nthe gateway stays unprovisioned with its service disabled until "
            "an update to the latest firmware has succeeded"
            % ("finished (it had been interrupted)" if doc.get("resumed") else "done",
               doc["files_destroyed"], "destroyed" if doc["kek_destroyed"] else "was absent",
               doc["firmware_after"].get("version") or "(unknown version)",
               ("with " + ", ".join(doc["kept"])) if doc["kept"] else "nothing else", how))
    emit(doc, args.json, text)
    return 0
