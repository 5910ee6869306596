"""`mamori-gateway reset --resale`: destroy the household's state, keep the updated firmware."""

from __future__ import annotations

import argparse
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.statedir import add_state_dir_arg, existing_state_dir


def register(sub: Any) -> None:
    """Add the `reset` command."""
    p = sub.add_parser("reset")
    p.add_argument("--resale", action="store_true", required=True,
                   help="the reset to perform (resale: everything of the household)")
    p.add_argument("--board", default="sim", help="board profile (where the slots are)")
    add_state_dir_arg(p)
    p.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=_reset)


def _reset(args: argparse.Namespace) -> int:
    if not args.resale:
        raise ConfigError("only --resale is supported")
    board = load_board(args.board)
    doc = resale_reset(existing_state_dir(args.state_dir, args.board), board, yes=args.yes)
    logs = doc["logs"]
    text = ("resale reset done: %d files destroyed, device key %s; firmware %s kept (%s)\n"
            "logs: %s\nthe gateway stays unprovisioned with its service disabled until an "
            "update to the latest firmware has succeeded"
            % (doc["files_destroyed"], "destroyed" if doc["kek_destroyed"] else "was absent",
               doc["firmware_after"].get("version") or "(unknown version)",
               ", ".join(doc["kept"]) or "nothing",
               "uploaded" if logs.get("uploaded") else "not uploaded: " + logs.get("reason", "")))
    emit(doc, args.json, text)
    return 0
