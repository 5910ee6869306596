"""`mamori platform watch|command|selftest-request|log-request|revocations`: the platform side."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from firmware.common.cli import emit, plain
from firmware.common.fsutil import check_output, write_output
from firmware.core.command_auth import valid_token
from firmware.core.errors import ConfigError, StateError
from firmware.core.ids import ID_HINT, valid_id
from firmware.gateway.wan import topics
from host_tools.logs.inbox import LOG_ITEMS, Inboxes
from host_tools.platform.client import PlatformClient
from host_tools.platform.signing import new_envelope, sign
from host_tools.platform.site import load_site

# The watcher's named session by default: a broker stall or a network cut loses no alert.
WATCH_SESSION = "mamori-platform-watch"


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
    w.add_argument("--session", default=WATCH_SESSION, metavar="ID",
                   help="the persistent MQTT session: the broker keeps alerts for it while "
                        "the watcher is away or cut off (default: %(default)s)")
    w.add_argument("--clean-session", action="store_true",
                   help="no persistent session: only what arrives while connected")
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

    r = psub.add_parser("revocations", help="push the site's signed CRL to its gateways "
                                            "(exit 0 when each confirmed the install)")
    common(r, gateway=False)
    r.add_argument("--gateway", default=None, metavar="ID",
                   help="only this gateway (default: every live gateway of the site)")
    r.add_argument("--resign", action="store_true",
                   help="re-sign the CRL first (next number, fresh lifetime): the refresh")
    r.add_argument("--every", type=float, default=None, metavar="SECONDS",
                   help="repeat (re-sign if --resign, push) every SECONDS until Ctrl-C")
    r.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for each gateway's answer")
    r.set_defaults(func=_revocations)

    for name, kind, helptext in (("selftest-request", "selftest_req", "ask for a self-test"),
                                 ("log-request", "log_req", "ask for a log upload")):
        r = psub.add_parser(name, help=helptext)
        common(r)
        if kind == "log_req":
            r.add_argument("--since", type=float, default=0.0, metavar="UNIX_TIME")
        else:
            r.add_argument("--report-timeout", type=float, default=300.0, metavar="SECONDS",
                           help="how long to wait for the signed report (default 300)")
            r.add_argument("--out", type=Path, default=None, metavar="FILE",
                           help="save the signed report (`mamori commissioning verify` checks "
                                "it)")
        r.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                       help="how long to wait for the gateway's acknowledgement")
        r.set_defaults(func=_request, kind=kind)


def _check_ids(*values: str) -> None:
    """Gateway and device ids: the provisioning syntax (they become topic levels and folders)."""
    for v in values:
        if not valid_id(v):
            raise ConfigError(f"invalid id {v!r}", hint=ID_HINT)


def _check_tokens(*values: str) -> None:
    for v in values:
        if not valid_token(v) or "@" in v:
            raise ConfigError(f"invalid name {v!r}",
                              hint="use letters, digits, '.', '_', ':', '-'")


def _line(m: dict[str, Any]) -> str:
    """One watched message as a text line (every field through plain(): no terminal controls)."""
    body = m.get("body", {})
    kind = plain(m.get("type"), "?")
    gw = plain(m.get("gateway"))
    if kind == "status":
        return "%-10s %-8s online %s, queue %s" % (gw, kind, plain(body.get("online")),  # noqa: UP031
                                                 plain(body.get("queue_depth"), "0"))
    if kind == "cmd_result":
        why = body.get("refused") or body.get("reason") or ""
        return "%-10s %-8s %s %s on %s: %s, actual %s%s" % (  # noqa: UP031
            gw, "result", plain(body.get("command_id")), plain(body.get("action")),
            plain(body.get("device")), "done" if body.get("ok") else "NOT done",
            plain(body.get("actual")), " (%s)" % plain(why) if why else "")
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

    inboxes = Inboxes(args.log_inbox, site.escrow_key()) if args.log_inbox else None

    def file_log(m: dict[str, Any]) -> None:
        gw_id, body = str(m.get("gateway")), m.get("body") or {}
        if inboxes is None or body.get("type") not in LOG_ITEMS:
            return
        if inboxes.file(gw_id, body) is False:
            # e.g. a second, different key escrow or a rewritten segment: possible tampering
            print("ALERT: %s log upload refused by the platform inbox (%s %s)"
                  % (plain(gw_id), plain(body.get("type")),
                     plain(body.get("name", body.get("log_id")), "")),
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

    session = None if args.clean_session else args.session
    if session:
        _check_tokens(session)
    client = PlatformClient(load_site(args.site, watch=True), args.broker, show,
                            session_id=session)
    client.connect()
    # Only now can nothing be missed: the subscription stands (a persistent session keeps
    # what arrives while the watcher is away from here on).
    print("watching %s: subscribed to every gateway's up-link (Ctrl-C to stop)" % args.broker,
          file=sys.stderr, flush=True)
    end = time.monotonic() + args.duration if args.duration else None
    try:
        while (end is None or time.monotonic() < end) and (
                args.count is None or seen[0] < args.count):
            time.sleep(0.1)
    finally:
        client.close()
    return 0


def _command(args: argparse.Namespace) -> int:
    _check_ids(args.gateway, args.device)
    _check_tokens(args.action)
    if args.requested_by:
        _check_tokens(args.requested_by)
    if args.approved_by:
        _check_tokens(args.approved_by)
    if not 1 <= args.ttl <= 300:
        raise ConfigError("--ttl must be between 1 and 300 seconds (the gateway refuses more)")
    site = load_site(args.site, need_signing_key=True)
    env = sign(new_envelope(args.gateway, args.device, args.action, ttl=args.ttl,
                            requested_by=args.requested_by, approved_by=args.approved_by),
               site.signing_key())
    client = PlatformClient(site, args.broker)
    client.connect()
    print("sent %s to %s on %s; waiting up to %.0f s for its result"
          % (plain(args.action), plain(args.device), plain(args.gateway), args.timeout),
          file=sys.stderr, flush=True)
    try:
        result = client.command(env, args.timeout)
    finally:
        client.close()
    if result is None:
        raise StateError(f"no result from gateway {args.gateway} within {args.timeout:.0f} s",
                         "is the gateway connected? (`mamori platform watch`)")
    code, reason = plain(result.get("refused"), ""), plain(result.get("reason"), "")
    why = reason if code and reason.startswith(code) else ", ".join(w for w in (code, reason)
                                                                    if w)
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
    if args.kind == "selftest_req":
        check_output("--out", args.out)  # before the gateway spends a minute on the checks
    client = PlatformClient(site, args.broker)
    client.connect()
    try:
        client.publish(topics.down(args.gateway, args.kind), doc)
        found = client.wait_for(lambda m: m.get("body", {}).get("request_id") == req_id,
                                args.timeout)
        if not found:
            raise StateError(f"gateway {args.gateway} did not acknowledge within "
                             f"{args.timeout:.0f} s", "is it connected?")
        body = found[0]["body"]
        if args.kind != "selftest_req" or body.get("status") != "accepted":
            emit(body, args.json, f"{args.kind} {req_id}: {plain(body.get('status'))}")
            return 0 if body.get("status") != "refused" else 3
        print(f"{args.kind} {req_id}: accepted; waiting up to {args.report_timeout:.0f} s for "
              "the signed report", file=sys.stderr, flush=True)
        found = client.wait_for(lambda m: m.get("body", {}).get("request_id") == req_id
                                and m["body"].get("status") in ("done", "refused"),
                                args.report_timeout)
    finally:
        client.close()
    if not found:
        raise StateError(f"no report from gateway {args.gateway} within "
                         f"{args.report_timeout:.0f} s", "`mamori platform watch` shows it when "
                                                         "it comes; or raise --report-timeout")
    return _show_report(found[0]["body"], req_id, args)


def _show_report(body: dict[str, Any], req_id: str, args: argparse.Namespace) -> int:
    """The gateway's signed self-test report: saved, shown, its verdict as the exit code."""
    from firmware.gateway.selftest.report import render_table

    if body.get("status") == "refused":
        raise StateError("the gateway refused the self-test request: %s"
                         % plain(body.get("reason")))
    report = body.get("report")
    if not isinstance(report, dict) or not isinstance(report.get("summary"), dict):
        raise StateError("the gateway's answer carries no report")
    if args.out is not None:
        write_output(args.out, json.dumps({"report": report, "signature":
                                           body.get("signature")}, indent=2) + "\n")
    saved = ("\nsaved to %s: `mamori commissioning verify %s --key PUB.pem --request-id %s` "
             "checks its signature" % (args.out, args.out, req_id)) if args.out else \
        "\n(unverified here: save it with --out and check it with `mamori commissioning verify`)"
    emit(body, args.json, render_table(report) + saved)
    code = report["summary"].get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else 1


class NotConfirmed(StateError):
    """A gateway did not confirm the CRL install."""

    exit_code = 3


def _push_once(args: argparse.Namespace) -> dict[str, Any]:
    from host_tools.platform import revocations
    from provisioning.site import Site

    site = Site(args.site)
    gateways = revocations.gateways_of(site, args.gateway)
    number = site.write_crl() if args.resign else site.crl().number
    client = PlatformClient(load_site(args.site), args.broker)
    client.connect()
    try:
        answers = revocations.push(client, site.crl_pem(), gateways, args.timeout)
    finally:
        client.close()
    return {"crl_number": number, "gateways": answers,
            "confirmed": revocations.confirmed(answers)}


def _show_push(res: dict[str, Any], as_json: bool) -> None:
    lines = ["CRL %d:" % res["crl_number"]]
    for gw, a in sorted(res["gateways"].items()):
        lines.append("  %-20s %-10s %s%s" % (gw, plain(a.get("status")), (
            "number %s" % plain(a["number"])) if "number" in a else "",
            (" - " + plain(a["reason"])) if a.get("reason") else ""))
    emit(res, as_json, "\n".join(lines))


def _revocations(args: argparse.Namespace) -> int:
    if args.every is not None and not 60 <= args.every <= 30 * 86400:
        raise ConfigError("--every must be between 60 seconds and 30 days")
    if not 1 <= args.timeout <= 600:
        raise ConfigError("--timeout must be between 1 and 600 seconds")
    if args.every is None:
        res = _push_once(args)
        _show_push(res, args.json)
        if not res["confirmed"]:
            raise NotConfirmed("not every gateway confirmed CRL %d" % res["crl_number"],
                               "is the gateway connected? (`mamori platform watch`)")
        return 0
    while True:  # the refresh loop: one failed round is reported, the next one retries
        try:
            _show_push(_push_once(args), args.json)
        except StateError as exc:
            print("error: %s" % exc, file=sys.stderr, flush=True)
        time.sleep(args.every)
