"""`mamori-gateway admin ...`: console side of the local admin interface."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from firmware.gateway.cli.credinput import credential_lines
from firmware.gateway.runtime.statedir import add_state_dir_arg, existing_state_dir


def register(sub: Any) -> None:
    """Add `admin set-password` and `admin status`."""
    p = sub.add_parser("admin")
    asub = p.add_subparsers(dest="admin_command", metavar="ACTION")
    asub.required = True
    sp = asub.add_parser("set-password", help="change an account's credential (first use "
                                              "included); old and new are read from the "
                                              "terminal, or two lines on stdin")
    add_state_dir_arg(sp)
    sp.add_argument("--account", default="installer", help="account (default installer)")
    sp.set_defaults(func=_set_password)
    st = asub.add_parser("status", help="credential state, accounts, locked-setting drift")
    add_state_dir_arg(st)
    st.add_argument("--board", default="sim")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)


def _read_secrets() -> tuple[str, str]:
    if sys.stdin.isatty():
        old = getpass.getpass("current credential: ")
        new = getpass.getpass("new credential: ")
        if getpass.getpass("new credential again: ") != new:
            raise ConfigError("the two new credentials differ")
        return old, new
    lines = credential_lines()
    if len(lines) < 2:
        raise ConfigError("expected two lines on stdin: current credential, new credential")
    return lines[0], lines[1]


def _set_password(args: argparse.Namespace) -> int:
    from firmware.gateway.admin.app import AdminApp

    state = existing_state_dir(args.state_dir)
    old, new = _read_secrets()
    app = AdminApp(state)
    try:
        app._check_new(new)
        app.creds.change(args.account, old, new)
        app.db.drop_sessions(args.account)
    finally:
        app.close()
    print("credential of %s changed; its sessions were ended" % args.account)
    return 0


def _status(args: argparse.Namespace) -> int:
    from functools import partial

    from firmware.common.boards import load_board
    from firmware.gateway.admin.app import AdminApp
    from firmware.gateway.update import status as update_status

    board = load_board(args.board)
    state = existing_state_dir(args.state_dir, args.board)
    app = AdminApp(state, board, firmware=partial(update_status, state, board))
    try:
        doc = app.status_doc()
    finally:
        app.close()
    text = "installer credential: %s\naccounts: %d, sessions: %d\nlocked-setting drift: %s" % (
        doc["installer_credential"], doc["accounts"], doc["sessions"],
        "; ".join(doc["locked_settings_drift"]) or "none")
    if doc["resale"]:
        text += "\nresold: service disabled until an update to the latest firmware"
    emit(doc, args.json, text)
    return 0 if not doc["locked_settings_drift"] else 1
