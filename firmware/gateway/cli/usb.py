"""`mamori-gateway usb evaluate|learn|check|commit|maintenance`: the USB-port lockdown."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.common.fsutil import atomic_write
from firmware.common.passwords import AdminCredential
from firmware.core import strictjson
from firmware.core.errors import AuthError, ConfigError, ProtocolError, StateError
from firmware.core.usbmaint import DEFAULT_SECONDS, MaintenanceWindows
from firmware.core.usbpolicy import BoardUsb, Policy, evaluate, learn, refused
from firmware.gateway.cli.credinput import read_credential
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve
from firmware.gateway.usbguard.store import (
    RULES_FILE,
    WINDOWS_FILE,
    load_windows,
    read_policy,
    windows_locked,
)
from firmware.gateway.usbguard.sysfs import Sysfs

CREDENTIAL_FILE = "admin/credential.json"


def _board_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", default=os.environ.get("MAMORI_BOARD", "sim"),
                   help="board profile whose usb_ports apply (default: $MAMORI_BOARD or sim)")
    p.add_argument("--no-board", action="store_true",
                   help="ignore the board profile (rules and default deny only)")


def register(sub: Any) -> None:
    """Add the `usb` command group."""
    p = sub.add_parser("usb")
    us = p.add_subparsers(dest="usb_cmd", metavar="ACTION")
    us.required = True

    ev = us.add_parser("evaluate", help="show the decision for every device, change nothing")
    ev.add_argument("--policy", type=Path, help="rule file (default: the committed one)")
    ev.add_argument("--sysfs", type=Path, default=Path("/sys"), help="sysfs root (default /sys)")
    _board_arg(ev)
    add_state_dir_arg(ev)
    ev.add_argument("--json", action="store_true", help="machine-readable output")
    ev.set_defaults(func=_evaluate)

    le = us.add_parser("learn", help="write a policy allowing the devices present now")
    le.add_argument("--sysfs", type=Path, default=Path("/sys"), help="sysfs root (default /sys)")
    le.add_argument("--out", type=Path, required=True, help="where to write the rule file")
    le.add_argument("--force", action="store_true", help="overwrite an existing file")
    _board_arg(le)
    le.add_argument("--json", action="store_true", help="machine-readable output")
    le.set_defaults(func=_learn)

    ck = us.add_parser("check", help="validate a rule file (errors name the file and line)")
    ck.add_argument("--policy", type=Path, required=True)
    _board_arg(ck)
    ck.add_argument("--json", action="store_true", help="machine-readable output")
    ck.set_defaults(func=_check)

    co = us.add_parser("commit", help="validate a rule file and install it for the gateway")
    co.add_argument("--policy", type=Path, required=True)
    _board_arg(co)
    add_state_dir_arg(co)
    co.add_argument("--json", action="store_true", help="machine-readable output")
    co.set_defaults(func=_commit)

    mp = us.add_parser("maintenance", help="time-boxed operator windows")
    ms = mp.add_subparsers(dest="maint_cmd", metavar="ACTION")
    ms.required = True
    op = ms.add_parser("open", help="open a window for one port or device class "
                       "(admin credential read from stdin)")
    op.add_argument("--port", default="", help='sysfs port, e.g. "1-4"')
    op.add_argument("--class", dest="classes", action="append", default=[],
                    help="interface class: hid, storage, network, audio, video or a hex code")
    op.add_argument("--minutes", type=float, default=DEFAULT_SECONDS / 60,
                    help="window length (default 15, at most 240)")
    op.add_argument("--operator", required=True, help="who opens the window (access log)")
    op.add_argument("--reason", default="", help="why (access log)")
    op.add_argument("--credential-file", type=Path,
                    help="admin credential record (default STATE_DIR/" + CREDENTIAL_FILE + ")")
    for q in (op,):
        _board_arg(q)
        add_state_dir_arg(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")
    op.set_defaults(func=_maint_open)
    cl = ms.add_parser("close", help="close a window early")
    cl.add_argument("window_id")
    _board_arg(cl)
    add_state_dir_arg(cl)
    cl.add_argument("--json", action="store_true", help="machine-readable output")
    cl.set_defaults(func=_maint_close)
    ls = ms.add_parser("list", help="open windows")
    add_state_dir_arg(ls)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_maint_list)


def _board(args: argparse.Namespace) -> BoardUsb:
    if getattr(args, "no_board", False):
        return BoardUsb()
    return BoardUsb(load_board(args.board).to_dict())


def _state_dir(args: argparse.Namespace) -> Path:
    return resolve(args.state_dir, getattr(args, "board", "sim"))


def _evaluate(args: argparse.Namespace) -> int:
    board = _board(args)
    state = _state_dir(args)
    policy_path = args.policy or state / RULES_FILE
    policy = read_policy(policy_path, board) if (args.policy or policy_path.exists()) else \
        Policy([], board, "builtin (board profile + default deny)")
    windows = MaintenanceWindows(time.time, board.locked)
    windows.load(load_windows(state / WINDOWS_FILE))
    sysfs = Sysfs(args.sysfs)
    results = [evaluate(sysfs.read_device(n), policy, windows.active()) for n in sysfs.names()]
    lines = []
    for r in results:
        lines.append("%-8s %-9s %-6s %s" % (r["device"], r["id"], r["decision"], r["rule"]))
        for i in r["interfaces"]:
            lines.append("    %-12s %s %-6s %s" % (i["interface"], i["type"], i["decision"],
                                                   i["reason"]))
    refused_n = sum(1 for r in results if refused(r))
    lines.append("%d devices, %d refused (policy: %s)" % (len(results), refused_n,
                                                          policy.source))
    emit(results, args.json, "\n".join(lines))
    return 0


def _learn(args: argparse.Namespace) -> int:
    board = _board(args)
    if args.out.exists() and not args.force:
        raise ConfigError("exists already", str(args.out), hint="use --force to overwrite")
    sysfs = Sysfs(args.sysfs)
    devices = [sysfs.read_device(n) for n in sysfs.names()]
    bad = [d["name"] for d in devices if d.get("error")]
    if bad:
        raise StateError("cannot learn devices with unreadable descriptors: " + ", ".join(bad),
                         "unplug them and run learn again")
    text = learn(devices, board, "board %s, %s" % (board.name or "none",
                                                   time.strftime("%Y-%m-%d %H:%M:%S")))
    Policy.parse(text, str(args.out), board)  # what we write must load
    atomic_write(args.out, text.encode("utf-8"))
    rules = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    emit({"out": str(args.out), "rules": len(rules), "devices": len(devices)}, args.json,
         "wrote %d rules to %s; review it, then `mamori-gateway usb commit --policy %s`"
         % (len(rules), args.out, args.out))
    return 0


def _check(args: argparse.Namespace) -> int:
    policy = read_policy(args.policy, _board(args))
    emit({"policy": str(args.policy), "rules": len(policy.rules), "ok": True}, args.json,
         "%s: %d rules, ok" % (args.policy, len(policy.rules)))
    return 0


def _commit(args: argparse.Namespace) -> int:
    board = _board(args)
    read_policy(args.policy, board)
    data = args.policy.read_bytes()
    target = _state_dir(args) / RULES_FILE
    atomic_write(target, data)
    emit({"installed": str(target)}, args.json,
         "installed %s (the running gateway reloads it within a second)" % target)
    return 0


def _authenticate(args: argparse.Namespace, state: Path) -> None:
    path = args.credential_file or state / CREDENTIAL_FILE
    try:
        record = strictjson.loads_object(path.read_bytes()[:65536], "admin credential", 4)
    except FileNotFoundError:
        raise AuthError("no admin credential provisioned at %s" % path,
                        "provision the gateway first")
    except (OSError, ProtocolError):
        raise ConfigError("unreadable admin credential record", str(path))
    secret = read_credential()
    if not secret:
        raise AuthError("the admin credential must be given on stdin")
    AdminCredential(record).authenticate(secret)


def _maint_open(args: argparse.Namespace) -> int:
    board = _board(args)
    state = _state_dir(args)
    _authenticate(args, state)
    seconds = int(round(args.minutes * 60))
    with windows_locked(state, MaintenanceWindows(time.time, board.locked)) as ws:
        ws.expire()
        w = ws.open(args.operator, seconds, args.port, args.classes, args.reason)
    emit(w, args.json, "opened %s for %s until %s" % (
        w["id"], w["port"] or ",".join(w["classes"]),
        time.strftime("%H:%M:%S", time.localtime(w["expires"]))))
    return 0


def _maint_close(args: argparse.Namespace) -> int:
    board = _board(args)
    with windows_locked(_state_dir(args), MaintenanceWindows(time.time, board.locked)) as ws:
        w = ws.close(args.window_id)
    emit(w, args.json, "closed " + w["id"])
    return 0


def _maint_list(args: argparse.Namespace) -> int:
    ws = MaintenanceWindows(time.time)
    ws.load(load_windows(_state_dir(args) / WINDOWS_FILE))
    active = ws.active()
    emit(active, args.json, "\n".join("%s %s %s until %s" % (
        w["id"], w["principal"], w["port"] or ",".join(w["classes"]),
        time.strftime("%H:%M:%S", time.localtime(w["expires"]))) for w in active)
        or "no open maintenance window")
    return 0
