"""`mamori push`: announce a published release to gateways in staged waves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware.cli_common import emit
from firmware.core.errors import ConfigError, StateError
from host_tools.push.waves import DEFAULT_MAX_FAILURE, parse_waves, rollout
from host_tools.release.families import target_path
from host_tools.release.repo import ReleaseRepo


def register(sub: Any) -> None:
    """Add the `push` command."""
    p = sub.add_parser("push", help="tell gateways about a release in staged waves")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--board", required=True)
    p.add_argument("--gateways", required=True, type=Path,
                   help="file with one gateway id per line")
    p.add_argument("--url", required=True, help="HTTPS base URL gateways update from")
    p.add_argument("--waves", default="1,10,100", help="cumulative percentages")
    p.add_argument("--max-failure-rate", type=float, default=DEFAULT_MAX_FAILURE)
    p.add_argument("--results", type=Path,
                   help="JSON map gateway -> true/false (install outcome) to drive the waves")
    p.add_argument("--broker", help="MQTT broker URL of the WAN channel")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_push)


def _push(args: argparse.Namespace) -> int:
    rel = ReleaseRepo(args.repo).current(args.board)
    if rel is None:
        raise StateError("no release published for board %s" % args.board)
    gws = [g.strip() for g in args.gateways.read_text().splitlines() if g.strip()]
    if not gws:
        raise ConfigError("lists no gateways", str(args.gateways))
    message = {"type": "ota.available", "board": args.board, "version": rel["version"],
               "target": target_path(args.board), "url": args.url,
               "min_version": rel.get("min_version", "")}
    if args.broker:
        raise StateError("the MQTT WAN transport is not wired into `mamori push` yet",
                         "omit --broker to print the messages per wave")
    sent: list[dict[str, Any]] = []
    outcome: dict[str, bool] = {}
    if args.results:
        outcome = {str(k): bool(v) for k, v in json.loads(args.results.read_text()).items()}
    report = rollout(gws, message, lambda g, m: sent.append({"gateway": g, "message": m}),
                     lambda wave: {g: outcome.get(g, not args.results) for g in wave},
                     parse_waves(args.waves), args.max_failure_rate)
    report["messages"] = sent
    lines = ["wave %d: %d gateways, failure rate %.0f%%" % (w["wave"], w["size"],
                                                             w["failure_rate"] * 100)
             for w in report["waves"]]
    if report["halted"]:
        lines.append("HALTED: " + report["reason"])
    emit(report, args.json, "\n".join(lines))
    return 2 if report["halted"] else 0
