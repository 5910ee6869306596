"""`mamori-gateway selftest`: prove each applicable requirement with a live check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.fsutil import check_output, write_output
from firmware.core.errors import ConfigError
from firmware.gateway.identity import deviceinfo
from firmware.gateway.selftest.report import build_report, render_html, render_table
from firmware.gateway.selftest.runner import resolve_board, resolve_level, run_checks
from firmware.gateway.selftest.signing import load_private_key, sign_report


def register(sub: Any) -> None:
    """Add the `selftest` command."""
    p = sub.add_parser("selftest")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR",
                   help="the gateway's state directory (only read; checks work on copies)")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML assessment record")
    p.add_argument("--only", metavar="ID", help="run one check (or one feature, e.g. tls)")
    p.add_argument("--level", type=int, choices=(2, 3),
                   help="judge against ★★ or ★★★ (default: the installation's level)")
    p.add_argument("--board", metavar="NAME",
                   help="board profile (default: the one recorded in deviceinfo.json)")
    p.add_argument("--sign-key", type=Path, metavar="PEM",
                   help="sign the JSON report with this Ed25519/P-256 key")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON report here")
    p.set_defaults(func=_selftest)


def _selftest(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    if not state_dir.is_dir():
        raise ConfigError(f"state directory {state_dir} does not exist",
                          hint="pass the gateway's --state-dir")
    check_output("--out", args.out)  # before the checks, not after a minute of them
    check_output("--html", args.html)
    level = resolve_level(state_dir, args.level)
    board = resolve_board(state_dir, args.board)
    results = run_checks(state_dir, level, board, args.only)
    try:
        device: dict[str, Any] | None = deviceinfo.load(state_dir)
    except ConfigError:
        device = None
    report = build_report(results, level, state_dir, board, device)
    doc: dict[str, Any] = report
    if args.sign_key is not None:
        doc = sign_report(report, load_private_key(args.sign_key))
    if args.out is not None:
        write_output(args.out, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    if args.html is not None:
        write_output(args.html, render_html(report))
    emit(doc, args.json, render_table(report))
    return int(report["summary"]["exit_code"])
