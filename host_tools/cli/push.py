"""`mamori push`: announce a published release to gateways in staged waves."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.families import target_path
from firmware.core.errors import ConfigError, StateError
from host_tools.push.waves import DEFAULT_MAX_FAILURE, parse_waves, rollout
from host_tools.release.repo import ReleaseRepo


def register(sub: Any) -> None:
    """Add the `push` command."""
    p = sub.add_parser("push")
    p.add_argument("repo", type=Path, metavar="REPO")
    p.add_argument("--board", required=True)
    p.add_argument("--gateways", required=True, type=Path,
                   help="file with one gateway id per line")
    p.add_argument("--url", required=True, help="HTTPS base URL gateways update from")
    p.add_argument("--waves", default="1,10,100", help="cumulative percentages")
    p.add_argument("--max-failure-rate", type=float, default=DEFAULT_MAX_FAILURE)
    p.add_argument("--results", type=Path,
                   help="JSON map gateway -> true/false (install outcome) to drive the waves")
    p.add_argument("--broker", metavar="URL",
                   help="mqtts://host:port of the WAN channel: send signed update requests")
    p.add_argument("--site", type=Path, metavar="DIR",
                   help="site directory (platform TLS identity and command-signing key)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="how long to wait for each wave's results (--broker)")
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
    if not 0 <= args.max_failure_rate <= 1:
        raise ConfigError("--max-failure-rate must be between 0 and 1")
    if args.broker:
        return _push_wan(args, gws, message)
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


def _push_wan(args: argparse.Namespace, gws: list[str], message: dict[str, Any]) -> int:
    """Signed update requests over MQTT; each wave waits for the gateways' results."""
    from host_tools.platform.client import PlatformClient
    from host_tools.platform.site import load_site
    from host_tools.push.wan import WanPush

    if args.site is None:
        raise ConfigError("--broker needs --site DIR (the requests are signed with its key)")
    site = load_site(args.site, need_signing_key=True)
    client = PlatformClient(site, args.broker)
    client.connect()
    try:
        push = WanPush(client, site.signing_key(), args.board, args.url,
                       str(message.get("min_version") or ""), timeout=args.timeout)
        report = rollout(gws, message, push.publish, push.results, parse_waves(args.waves),
                         args.max_failure_rate)
    finally:
        client.close()
    report["results"] = push.outcomes
    report["skipped"] = sorted(set(gws) - set(push.sent))
    lines = []
    for w in report["waves"]:
        lines.append("wave %d: %d gateways, failure rate %.0f%%" % (
            w["wave"], w["size"], w["failure_rate"] * 100))
    for g in sorted(push.outcomes):
        o = push.outcomes[g]
        lines.append("  %s: %s %s %s" % (g, o.get("result"), o.get("version", ""),
                                         o.get("reason", "")))
    if report["halted"]:
        lines.append("HALTED: %s; %d gateways not asked" % (report["reason"],
                                                           len(report["skipped"])))
    emit(report, args.json, "\n".join(lines))
    return 2 if report["halted"] else 0
