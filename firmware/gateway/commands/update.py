"""`mamori-gateway update`: check, download, verify and install one update now (or offline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.boards import load_board
from firmware.cli_common import emit
from firmware.core.errors import MamoriError
from firmware.gateway.update.agent import UpdateAgent, refusal


class RolledBack(MamoriError):
    """The new image failed its trial and the previous one runs again."""

    code = "rolled_back"
    exit_code = 3


def register(sub: Any) -> None:
    """Add the `update` command."""
    p = sub.add_parser("update", help="install one signed update now (online or offline)")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--from", dest="source", default="", metavar="URL_OR_PATH",
                   help="repository URL (https://host/base) or a copy on a stick (dir or .tar)")
    p.add_argument("--board", default="sim", help="board profile (default: sim)")
    p.add_argument("--trust-root", type=Path, metavar="ROOT_JSON",
                   help="provision the first trusted TUF root (once, at manufacture)")
    p.add_argument("--ca-file", metavar="PEM", help="CA that signs the update server's TLS cert")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_update)


def _update(args: argparse.Namespace) -> int:
    agent = UpdateAgent(args.state_dir, load_board(args.board), args.source,
                        ca_file=args.ca_file)
    if args.trust_root:
        agent.trust_root(args.trust_root.read_bytes())
    try:
        result = agent.run()
    except MamoriError as exc:
        if args.json:
            emit(refusal(exc), True)
            raise SystemExit(getattr(exc, "exit_code", 1) or 1) from None
        raise
    text = {
        "installed": "installed %s in slot %s (was %s)" % (
            result.get("version"), result.get("slot"), result.get("from_version") or "none"),
        "current": "already current: %s in slot %s" % (result.get("version"),
                                                       result.get("slot")),
        "rolled_back": "rolled back: %s failed (%s); running %s in slot %s" % (
            result.get("failed_version"), result.get("reason"), result.get("version"),
            result.get("slot")),
    }.get(result["result"], str(result))
    emit(result, args.json, text)
    if result["result"] == "rolled_back":
        if not args.json:
            raise RolledBack(text)
        return RolledBack.exit_code
    return 0
