"""`mamori-gateway commission`: run the self-test at the installation's level, sign, store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.gateway.selftest.commissioning import commission
from firmware.gateway.selftest.report import render_table


def register(sub: Any) -> None:
    """Add the `commission` command."""
    p = sub.add_parser("commission")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the record entry and signed report")
    p.add_argument("--board", metavar="NAME", help="board profile (default: the recorded one)")
    p.add_argument("--level", type=int, choices=(2, 3),
                   help="override the installation's service level")
    p.set_defaults(func=_commission)


def _commission(args: argparse.Namespace) -> int:
    out = commission(args.state_dir, args.board, args.level)
    report = out["envelope"]["report"]
    emit(out, args.json, render_table(report) + f"\n\nsigned report stored: {out['path']}"
         f"\nkey id {out['entry']['keyid']}, report sha256 {out['entry']['report_sha256']}")
    return int(report["summary"]["exit_code"])
