"""`mamori platform watch|command|selftest-request|log-request`: the service-platform side."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from firmware.common.cli import emit, plain
from firmware.core.command_auth import valid_token
from firmware.core.errors import ConfigError, StateError
from firmware.gateway.wan import topics
from firmware.gateway.wan.logupload import decode_item
from host_tools.logs.inbox import PlatformInbox
from host_tools.platform.client import PlatformClient
from host_tools.platform.signing import new_envelope, sign
from host_tools.platform.site import load_site


class CommandNotExecuted(StateError):
    """The gateway refused the command or the device did not do it."""

    exit_code = 3


def register(sub: Any) -> None:
    """Add the `platform` command group."""
    p = sub.add_parser("platform")
    psub = p.add_subparsers(dest="platform_cmd", metavar="ACTION")
    psub.required = True

    def common(sp: argparse.ArgumentParser, gateway: bool = True) -> None:
        sp.add_argument("--broker", required=True, metavar="URL", help="mqtts://host:port")
        sp.add_argument("--site", required=True, type=Path, metavar="DIR",
                        help="site directory from `mamori provision init-site`")
        if gateway:
            sp.add_argument("--gateway", required=True, metavar="ID", help="gateway id")
        sp.add_argument("--json", action="store_true", help="machine-readable output")

    w = psub.add_parser("watch", help="print gateways' alerts, events, results and status")
    common(w, gateway=False)
    w.add_argument("--gateway", default=None, metavar="ID", help="only this gateway")
    w.add_argument("--session", default=None, metavar="ID",
                   help="persistent MQTT session: the broker keeps messages while away")
    w.add_argument("--log-inbox", type=Path, default=None, metavar="DIR",
                   help="file access-log uploads under DIR/GATEWAY (read with `mamori logs`)")
    w.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until Ctrl-C)")
    w.add_argument("--count", type=int, default=None, metavar="N",
                   help="stop after N messages")
    w.set_defaults(func=_watch)

    c = psub.add_parser("command", help="send a command (★★★ actions are signed)")
    common(c)
    c.add_argument("--device", required=True, metavar="ID")
    c.add_argument("--action", required=True, metavar="ACTION", help="e.g. unlock, lock")
    c.add_argument("--requested-by", default="operator", metavar="WHO")
    c.add_argument("--approved-by", default="", metavar="WHO")
    c.add_argument("--ttl", type=int, default=60, metavar="SECONDS", help="command validity")
    c.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                   help="how long to wait for the gateway's result")
    c.set_defaults(func=_command)

    for name, kind, helptext in (("selftest-request", "selftest_req", "ask for a self-test"),
                                 ("log-request", "log_req", "ask for a log upload")):
        r = psub.add_parser(name, help=helptext)
        common(r)
        if kind == "log_req":
            r.add_argument("--since", type=float, default=0.0, metavar="UNIX_TIME")
        r.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                       help="how long to wait for the gateway's acknowledgement")
        r.set_defaults(func=_request, kind=kind)


def _check_ids(*values: str) -> None:
    for v in values:
        if not valid_token(v) or "@" in v:
            raise ConfigError(f"invalid id {v!r}", hint="use letters, digits, '.', '_', ':', '-'")


def _line(m: dict[str, Any]) -> str:
    body = m.get("body", {})
    kind = m.get("type", "?")
    gw = plain(m.get("gateway"))
    if kind == "status":
        return "%-10s %-8s online %s, queue %s" % (gw, kind, plain(body.get("online")),  # noqa: UP031
                                                 plain(body.get("queue_depth"), "0"))
    if kind == "cmd_result":
        why = body.get("refused") or body.get("reason") or ""
        return "%-10s %-8s %s %s on %s: %s, actual %s%s" % (  # noqa: UP031
            gw, "result", plain(body.get("command_id")), plain(body.get("action")),
            plain(body.get("device")), "done" if body.get("ok") else "NOT done",
            plain(body.get("actual")), " (%s)" % why if why else "")
    words = [plain(body.get(k), "") for k in ("severity", "kind", "target", "result",
                                               "reason")]
    if not body.get("kind"):
        words[1] = plain(body.get("request"), "")
    if not body.get("result"):
        words[3] = plain(body.get("status"), "")
    return ("%-10s %-8s " % (gw, kind) + " ".join(w for w in words if w)).rstrip()


def _watch(args: argparse.Namespace) -> int:
    site = load_site(args.site)
    if args.gateway:
        _check_ids(args.gateway)
    seen = [0]

    inboxes: dict[str, PlatformInbox] = {}

    def file_log(m: dict[str, Any]) -> None:
        gw_id, body = str(m.get("gateway")), m.get("body") or {}
        if args.log_inbox is None or body.get("type") not in ("keys", "head", "segment"):
            return
        _check_ids(gw_id)
        inbox = inboxes.setdefault(gw_id, PlatformInbox(args.log_inbox / gw_id))
        if not inbox(decode_item(body, site.escrow_key(), gw_id)):
            # e.g. a second, different key escrow or a rewritten segment: possible tampering
            print("ALERT: %s log upload refused by the platform inbox (%s %s)"
                  % (gw_id, body.get("type"), body.get("name", body.get("log_id", ""))),
                  file=sys.stderr, flush=True)

    def show(m: dict[str, Any]) -> None:
        if args.gateway and m.get("gateway") != args.gateway:
            return
        if m.get("type") == "logs":
            file_log(m)
        seen[0] += 1
        if args.json:
            print(json.dumps(m, sort_keys=True, default=str), flush=True)
        else:
            print(_line(m), flush=True)

    if args.session:
        _check_ids(args.session)
    client = PlatformClient(site, args.broker, show, session_id=args.session)
    client.connect()
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while (end is None or time.monotonic() < end) and (
                args.count is None or seen[0] < args.count):
            time.sleep(0.1)
    finally:
        client.close()
    return 0


def _command(args: argparse.Namespace) -> int:
    _check_ids(args.gateway, args.device, args.action)
    if args.requested_by:
        _check_ids(args.requested_by)
    if args.approved_by:
        _check_ids(args.approved_by)
    if not 1 <= args.ttl <= 300:
        raise ConfigError("--ttl must be between 1 and 300 seconds (the gateway refuses more)")
    site = load_site(args.site, need_signing_key=True)
    env = sign(new_envelope(args.gateway, args.device, args.action, ttl=args.ttl,
                            requested_by=args.requested_by, approved_by=args.approved_by),
               site.signing_key())
    client = PlatformClient(site, args.broker)
    client.connect()
    try:
        result = client.command(env, args.timeout)
    finally:
        client.close()
    if result is None:
        raise StateError(f"no result from gateway {args.gateway} within {args.timeout:.0f} s",
                         "is the gateway connected? (`mamori platform watch`)")
    why = ", ".join(str(result[k]) for k in ("refused", "reason") if result.get(k))
    text = "%s %s on %s: %s (commanded %s; actual state: %s)%s" % (  # noqa: UP031
        plain(result.get("command_id")), args.action, args.device,
        "done" if result.get("ok") else "NOT done", plain(result.get("commanded")),
        plain(result.get("actual")), " - refused: " + why if result.get("refused") else
        (" - " + why if why else ""))
    emit(result, args.json, text)
    if not result.get("ok"):
        raise CommandNotExecuted("command was not executed: "
                                 + (result.get("refused") or result.get("reason") or "failed"))
    return 0


def _request(args: argparse.Namespace) -> int:
    _check_ids(args.gateway)
    site = load_site(args.site)
    req_id = "r-" + secrets.token_hex(8)
    doc: dict[str, Any] = {"id": req_id, "ts": time.time()}
    if args.kind == "log_req":
        doc["since"] = args.since
    client = PlatformClient(site, args.broker)
    client.connect()
    try:
        client.publish(topics.down(args.gateway, args.kind), doc)
        found = client.wait_for(lambda m: m.get("body", {}).get("request_id") == req_id,
                                args.timeout)
    finally:
        client.close()
    if not found:
        raise StateError(f"gateway {args.gateway} did not acknowledge within "
                         f"{args.timeout:.0f} s", "is it connected?")
    body = found[0]["body"]
    emit(body, args.json, f"{args.kind} {req_id}: {body.get('status')}")
    return 0
