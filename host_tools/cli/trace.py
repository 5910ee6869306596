"""`mamori trace`: the requirement traceability matrix (code, tests, self-test checks, status)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.core.errors import ConfigError
from firmware.core.selftest import REQUIREMENTS
from host_tools import trace

EXIT_PROBLEMS = 2


def register(sub: Any) -> None:
    """Add the `trace` command."""
    p = sub.add_parser("trace")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--file", type=Path, default=trace.DEFAULT_FILE, metavar="TOML",
                   help="the matrix (default: tests/traceability/requirements.toml)")
    p.add_argument("--id", action="append", default=[], metavar="ID", dest="ids",
                   help="show only this requirement (repeatable)")
    p.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    from firmware.gateway.selftest.checks import load_checks

    matrix = trace.load_matrix(args.file)
    registry = load_checks()
    problems = trace.validate(matrix, registry, known_levels=REQUIREMENTS)
    table = trace.rows(matrix, registry, problems)
    unknown = [i for i in args.ids if i not in matrix.entries]
    if unknown:
        raise ConfigError("no requirement %s in the matrix" % ", ".join(unknown),
                          hint="IDs look like SR2-H-2, C5, UK4")
    if args.ids:
        table = [r for r in table if r["id"] in args.ids]
        problems = [p for p in problems if p.req_id in args.ids
                    or p.req_id not in matrix.entries]
    general = [str(p) for p in problems if p.req_id not in matrix.entries]
    summary = {s: sum(1 for r in table if r["status"] == s)
               for s in ("implemented", "gap", "broken")}
    data = {"format": "mamori-trace/1", "matrix": matrix.source, "requirements": table,
            "problems": [{"id": p.req_id, "message": p.message} for p in problems],
            "summary": dict(summary, total=len(table)),
            "checks": dict(sorted(trace.registry_map(registry).items()))}
    emit(data, args.json, trace.render_text(table, general))
    return EXIT_PROBLEMS if problems else 0
