"""`mamori-gateway update`: check, download, verify and install one update now (or offline)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.core.errors import AuthError, MamoriError
from firmware.gateway.update.agent import UpdateAgent, refusal


class RolledBack(MamoriError):
    """The new image failed its trial and the previous one runs again."""

    code = "rolled_back"
    exit_code = 3


def register(sub: Any) -> None:
    """Add the `update` command."""
    p = sub.add_parser("update")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--from", dest="source", default="", metavar="URL_OR_PATH",
                   help="repository URL (https://host/base) or a copy on a stick (dir or .tar)")
    p.add_argument("--board", default="sim", help="board profile (default: sim)")
    p.add_argument("--trust-root", type=Path, metavar="ROOT_JSON",
                   help="provision the first trusted TUF root (once, at manufacture); "
                        "without --from it installs the root and nothing else (an "
                        "installation bundle made with `mamori provision gateway --release` "
                        "carries it already)")
    p.add_argument("--ca-file", metavar="PEM", help="CA that signs the update server's TLS cert")
    p.add_argument("--boot-dir", type=Path, metavar="DIR",
                   help="Raspberry Pi boards: mounted boot partition holding autoboot.txt "
                        "(default /boot/firmware)")
    p.add_argument("--console", action="store_true",
                   help="offline update by root on the board's local console (no credential)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_update)


_CONSOLE = re.compile(r"^/dev/(console|tty[0-9]+|ttyS[0-9]+|ttyAMA[0-9]+)$")


def local_console(euid: int, tty: str | None) -> bool:
    """True for root on the board's own console (not a network or pseudo terminal)."""
    return euid == 0 and tty is not None and _CONSOLE.match(tty) is not None


def _stdin_tty() -> str | None:
    try:
        return os.ttyname(0)
    except OSError:
        return None


def require_operator(args: argparse.Namespace, what: str = "an offline update") -> str:
    """`what` is for the operator only: root on the console, or the admin credential."""
    if args.console:
        if not local_console(os.geteuid(), _stdin_tty()):
            raise AuthError("--console is only for root on the board's local console",
                            "otherwise give the admin credential on stdin")
        return "console"
    from firmware.gateway.cli.credinput import read_credential
    from firmware.gateway.identity.install import authenticate_admin

    secret = read_credential().strip()
    if not secret:
        raise AuthError("%s needs the admin credential on stdin" % what,
                        "pipe it in (the provisioned `.admin-credential` file works as it is), "
                        "or use --console as root on the board's console")
    authenticate_admin(args.state_dir, secret)
    return "admin"


def _update(args: argparse.Namespace) -> int:
    if args.source and not args.source.startswith(("http://", "https://")):
        require_operator(args)
    agent = UpdateAgent(args.state_dir, load_board(args.board), args.source,
                        ca_file=args.ca_file, boot_dir=args.boot_dir)
    if args.trust_root:
        done = agent.trust_root(args.trust_root.read_bytes())
        if not args.source:
            emit({"result": "trusted-root", "root": str(args.trust_root), "trust": done},
                 args.json, ("trusted root installed: %s (no update checked)" if done ==
                             "installed" else "this root is already the trusted one: %s "
                             "(nothing changed, no update checked)") % args.trust_root)
            return 0
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
        "rebooting": "installed %s in slot %s; rebooting for its trial boot" % (
            result.get("version"), result.get("slot")),
        "rolling_back": "%s failed its trial (%s); rebooting into the previous slot" % (
            result.get("version"), result.get("reason")),
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
