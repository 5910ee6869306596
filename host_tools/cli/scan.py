"""`mamori scan`: the release's vulnerability scan and pentest against a staging gateway."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.fsutil import check_output, write_output
from host_tools.scan.report import render_html, render_table, report_hash
from host_tools.scan.runner import run_scan
from host_tools.scan.staging import ExtraService


def register(sub: Any) -> None:
    """Add the `scan` command."""
    p = sub.add_parser("scan")
    p.add_argument("--board", required=True, help="board profile of the release")
    p.add_argument("--json", action="store_true", help="print the JSON report")
    p.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="write the JSON report (give it to `mamori release publish "
                        "--scan-report`)")
    p.add_argument("--advisories", type=Path, metavar="FILE",
                   help="local OSV advisory database (JSON: one advisory, a list, or {vulns})")
    p.add_argument("--sbom", type=Path, metavar="FILE",
                   help="the release's CycloneDX SBOM (default: generate the release's one)")
    p.add_argument("--stage-extra", action="append", default=[], metavar="PROTO/PORT=COMMAND",
                   help="also run COMMAND in the staging gateway's namespace, declared on "
                        "PROTO/PORT (staging a candidate service, or a weakness in tests)")
    p.set_defaults(func=_scan)


def _scan(args: argparse.Namespace) -> int:
    check_output("--out", args.out)
    check_output("--html", args.html)
    extra = tuple(ExtraService.parse(s) for s in args.stage_extra)
    start = time.monotonic()

    def progress(step: str) -> None:
        print("scan: %s (%.0f s)" % (step, time.monotonic() - start), file=sys.stderr, flush=True)

    report = run_scan(args.board, args.advisories, args.sbom, extra, progress)
    if args.out is not None:
        write_output(args.out, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    if args.html is not None:
        write_output(args.html, render_html(report))
    doc = dict(report, report_sha256=report_hash(report)) if args.json else report
    emit(doc, args.json, render_table(report))
    return int(report["summary"]["exit_code"])
