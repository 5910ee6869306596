"""`mamori-gateway firewall render|apply|check`: the gateway's nftables posture."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from firmware.common.boards import load_board
from firmware.common.cli import emit
from firmware.common.ports import ADMIN_HTTPS_PORT, LAN_DEVICE_PORT
from firmware.core.errors import ConfigError
from firmware.gateway.firewall import posture
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.firewall.ruleset import Ruleset, build
from firmware.gateway.runtime.hostcheck import require_matching_host

DEFAULT_BOARD = "sim"


EXIT_DRIFT = 3  # distinct from 1 (error: could not check) and 2 (usage)


def _common(p: argparse.ArgumentParser, board_required: bool) -> None:
    p.add_argument("--board", required=board_required, default=DEFAULT_BOARD,
                   help=f"board profile name (default: {DEFAULT_BOARD})")
    p.add_argument("--device-port", type=int, default=LAN_DEVICE_PORT,
                   help=f"LAN device TLS port (default {LAN_DEVICE_PORT})")
    p.add_argument("--admin-port", type=int, default=ADMIN_HTTPS_PORT,
                   help=f"local admin HTTPS port (default {ADMIN_HTTPS_PORT})")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    """Add the `firewall` command group."""
    p = sub.add_parser("firewall")
    fsub = p.add_subparsers(dest="firewall_cmd", metavar="ACTION")
    fsub.required = True
    rp = fsub.add_parser("render", help="print the ruleset that would be applied")
    _common(rp, board_required=True)
    rp.set_defaults(func=_render)
    for name, func, helptext in (
        ("apply", _apply, "load the ruleset atomically (nft -f), then verify it"),
        ("check", _check, "compare the running ruleset and listeners with the expected ones"),
    ):
        ap = fsub.add_parser(name, help=helptext)
        _common(ap, board_required=False)
        ap.add_argument("--netns", metavar="NAME", help="act inside network namespace NAME")
        ap.add_argument("--no-listeners", action="store_true",
                        help="do not compare listening sockets with the allowlist")
        ap.set_defaults(func=func)


def _ruleset(args: argparse.Namespace) -> Ruleset:
    board = load_board(args.board)
    return build(policy_for_board(board, args.device_port, args.admin_port))


def _render(args: argparse.Namespace) -> int:
    rs = _ruleset(args)
    data = rs.to_dict()
    data["digest"] = rs.digest()
    emit(data, args.json, rs.text.rstrip("\n"))
    return 0


def _report(result: dict) -> str:
    lines = ["firewall {}: {} (expected digest {})".format(
        result["table"], "OK" if result["ok"] else "DRIFT", result["digest"])]
    rs = result["ruleset"]
    if not rs["loaded"]:
        lines.append("  table not loaded")
    for d in rs["drift"]:
        if d["what"] == "rule":
            what = d["rule"]["comment"] or json.dumps(d["rule"]["expr"], sort_keys=True)
            lines.append(f"  rule {d['change']} in chain {d['name']}: {what}")
        else:
            lines.append("  {} {} {}".format(d["what"], d["name"], d["change"]))
    hooked = {h["table"] for h in rs.get("foreign_hooks", [])}
    for h in rs.get("foreign_hooks", []):
        lines.append("  foreign table {} hooks {} (chain {}): it sees the packets our chains "
                     "judge".format(h["table"], h["change"][6:], h["name"]))
    for t in rs["foreign_tables"]:
        if t not in hooked:
            lines.append(f"  note: other table present: {t}")
    ls = result.get("listeners")
    if ls is not None:
        for lst in ls["unexpected"]:
            lines.append("  undeclared listener {} on {}".format(lst["key"], lst["address"]))
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    rs = _ruleset(args)
    result = posture.check(rs, args.netns, with_listeners=not args.no_listeners)
    emit(result, args.json, _report(result))
    if not result["ok"]:
        print("error: firewall posture differs from the expected one (`mamori-gateway firewall "
              "apply` restores the ruleset; foreign tables on our hooks must be removed; "
              "undeclared listeners must be stopped)", file=sys.stderr)
        return EXIT_DRIFT
    return 0


def _apply(args: argparse.Namespace) -> int:
    rs = _ruleset(args)
    if args.netns is None:
        # The host's own firewall: only on the board the profile describes, never the sim
        # board's (it runs on a developer's PC).
        if args.board == "sim":
            raise ConfigError("the sim board's firewall applies only inside a network "
                              "namespace", "--netns",
                              hint="pass --netns NAME (nothing was changed on this host)")
        require_matching_host(load_board(args.board))
    posture.apply(rs, args.netns)
    result = posture.check(rs, args.netns, with_listeners=not args.no_listeners)
    result["applied"] = True
    emit(result, args.json, _report(result))
    if not result["ok"]:
        print("error: ruleset applied but the posture check failed", file=sys.stderr)
        return EXIT_DRIFT
    return 0
