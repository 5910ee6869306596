"""`mamori-gateway commission`: run the self-test at the installation's level, sign, store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.gateway.selftest.commissioning import CommissioningRefused, commission
from firmware.gateway.selftest.report import render_table


def register(sub: Any) -> None:
    """Add the `commission` command."""
    p = sub.add_parser("commission")
    p.add_argument("--state-dir", required=True, type=Path, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print the record entry and signed report")
    p.add_argument("--board", metavar="NAME", help="board profile (default: the recorded one)")
    p.add_argument("--level", type=int, choices=(2, 3),
                   help="override the installation's service level")
    p.add_argument("--accept-findings", metavar="REASON",
                   help="sign and store a report that did not pass everything; the reason and "
                        "the failing checks are recorded in the signed report")
    p.set_defaults(func=_commission)


def _commission(args: argparse.Namespace) -> int:
    try:
        out = commission(args.state_dir, args.board, args.level,
                         accept_findings=args.accept_findings)
    except CommissioningRefused as exc:
        if args.json:
            print(json.dumps({"stored": False, "error": exc.code, "message": exc.message,
                              "hint": exc.hint, "report": exc.report}, indent=2))
        else:
            print(render_table(exc.report))
        print("error: " + str(exc), file=sys.stderr)
        return exc.exit_code
    report = out["envelope"]["report"]
    accepted = report.get("accepted_findings")
    text = (render_table(report) + f"\n\nsigned report stored: {out['path']}"
            f"\nkey id {out['entry']['keyid']}, report sha256 {out['entry']['report_sha256']}")
    if accepted:
        text += "\nfindings accepted (%s): %s" % (accepted["reason"], ", ".join(accepted["checks"]))
    emit(dict(out, stored=True), args.json, text)
    return int(report["summary"]["exit_code"])
