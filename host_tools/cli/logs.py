"""`mamori logs verify|show|export`: check and read a gateway's access log."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from firmware.common.accesslog.reader import LogTampered, iso, matches, parse_time, records, verify
from firmware.common.accesslog.source import open_source
from firmware.common.cli import emit, plain
from firmware.common.fsutil import write_output
from firmware.core.errors import ConfigError, MamoriError

CSV_FIELDS = ["seq", "time", "ts", "mono", "boot", "severity", "kind", "source", "principal",
              "action", "target", "result", "reason", "id", "params"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def register(sub: Any) -> None:
    """Add the `logs` command group."""
    p = sub.add_parser("logs")
    lsub = p.add_subparsers(dest="logs_cmd", metavar="ACTION")
    lsub.required = True
    vp = lsub.add_parser("verify", help="check chain, seals, signatures and completeness")
    _common(vp)
    vp.add_argument("--json", action="store_true", help="machine-readable report")
    vp.add_argument("--expect-reset", action="store_true",
                    help="also require that the log ended in a resale reset (exit 2 if not)")
    vp.set_defaults(func=_verify)
    ip = lsub.add_parser("import", help="file an operator's escrow of a gateway's log (written "
                                        "by `mamori-gateway reset --escrow-to`) into the "
                                        "platform's inbox")
    ip.add_argument("escrow", type=Path, metavar="FILE", help="mamori-log-escrow-*.jsonl")
    ip.add_argument("--site", type=Path, required=True, help="the site (its log-escrow key)")
    ip.add_argument("--inbox", type=Path, required=True,
                    help="the platform's log inbox (one folder per gateway)")
    ip.add_argument("--json", action="store_true", help="machine-readable summary")
    ip.set_defaults(func=_import)
    sp = lsub.add_parser("show", help="readable timeline of the records")
    _common(sp)
    _filters(sp)
    sp.add_argument("--json", action="store_true", help="records as a JSON list")
    sp.set_defaults(func=_show)
    ep = lsub.add_parser("export", help="export records as JSON lines or CSV")
    _common(ep)
    _filters(ep)
    ep.add_argument("--format", choices=("jsonl", "csv"), required=True)
    ep.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    ep.set_defaults(func=_export)


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: formula-like strings get a leading quote (OWASP)."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS:
        return "'" + value
    return value


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, metavar="PATH",
                   help="gateway state dir, its accesslog/ folder, an uploaded copy or a segment")
    p.add_argument("--key", type=Path, help="the platform's key file (platform-keys.json)")
    p.add_argument("--heads", type=Path, help="checkpoint heads held by the platform (JSONL)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help="from this time (ISO 8601 UTC or epoch seconds)")
    p.add_argument("--until", help="up to this time")
    p.add_argument("--source", help="only this source (platform, owner-app, local-admin, ...)")
    p.add_argument("--principal", help="only this principal")
    p.add_argument("--device", help="only records whose target is this device")
    p.add_argument("--action", help="only this action")
    p.add_argument("--result", help="only this result")


def _verify(args: argparse.Namespace) -> int:
    src = open_source(args.path, args.key, args.heads)
    rep = verify(src)
    if rep["ok"]:
        lines = ["intact: log %s, %d records (seq %s..%s), %d checkpoints up to epoch %d, "
                 "%d segment(s)" % (rep["log_id"], rep["records"], rep["first_seq"],
                                    rep["last_seq"], rep["checkpoints"], rep["last_epoch"],
                                    rep["segments"])]
    else:
        first = rep["first_problem"]
        lines = ["BROKEN at %s: %s" % (first["where"], first["problem"])]
        lines += ["  also at %s: %s" % (p["where"], p["problem"]) for p in rep["problems"][1:]]
    if rep["ended_in_reset"]:
        fin = rep["final_checkpoint"]
        lines.append("  ended in a resale reset at %s (final checkpoint, epoch %s, seq %s)"
                     % (iso(fin["ts"]), fin["epoch"], fin["seq"]))
    lines += ["  note: " + w for w in rep["warnings"]]
    emit(rep, args.json, "\n".join(lines))
    if not rep["ok"]:
        if args.json:
            return LogTampered.exit_code
        raise LogTampered("access log failed verification at %s" % rep["first_problem"]["where"],
                          rep["first_problem"]["problem"])
    if args.expect_reset and not rep["ended_in_reset"]:
        if args.json:
            return LogTampered.exit_code
        raise LogTampered("the access log does not end in a resale reset",
                          "records or checkpoints follow the last one, or the gateway was "
                          "reset without sealing its log")
    return 0


def _import(args: argparse.Namespace) -> int:
    from firmware.core.command_auth import valid_token
    from host_tools.logs.inbox import Inboxes
    from host_tools.platform.site import load_site

    inboxes = Inboxes(args.inbox, load_site(args.site).escrow_key())
    filed = refused = 0
    gateways: set[str] = set()
    try:
        lines = args.escrow.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read %s: %s" % (args.escrow, type(exc).__name__))
    for n, line in enumerate(lines, 1):
        try:
            m = json.loads(line)
            gw, body = m["gateway"], m["body"]
            if m.get("type") != "logs" or not isinstance(body, dict) or not isinstance(gw, str) \
                    or not valid_token(gw):
                raise ValueError("not a log message")
            ok = inboxes.file(gw, body)
        except (ValueError, KeyError, TypeError, MamoriError) as exc:
            raise ConfigError("%s line %d is not a Mamori log escrow message (%s)"
                              % (args.escrow, n, exc if isinstance(exc, MamoriError)
                                 else type(exc).__name__))
        gateways.add(gw)
        if ok is False:
            refused += 1
        elif ok:
            filed += 1
    doc = {"filed": filed, "refused": refused, "gateways": sorted(gateways),
           "inbox": str(args.inbox)}
    emit(doc, args.json, "%d message(s) filed for %s under %s; %d refused"
         % (filed, ", ".join(sorted(gateways)) or "no gateway", args.inbox, refused))
    if refused:
        raise LogTampered("%d escrowed message(s) were refused by the inbox" % refused,
                          "they would rewrite what the platform holds: keep the file as "
                          "evidence")
    return 0


def _selected(args: argparse.Namespace) -> list[dict[str, Any]]:
    src = open_source(args.path, args.key, args.heads)
    flt = {
        "since": parse_time(args.since) if args.since else None,
        "until": parse_time(args.until) if args.until else None,
        "source": args.source, "principal": args.principal, "device": args.device,
        "action": args.action, "result": args.result,
    }
    return [r for r in records(src) if matches(r, flt)]


def _show(args: argparse.Namespace) -> int:
    rows = _selected(args)
    lines = []
    for r in rows:
        who = plain(r.get("source"), "")
        if r.get("principal"):
            who += ":" + plain(r["principal"])
        line = "%s #%s %-8s %-10s %s %s %s -> %s" % (
            iso(r.get("ts")), plain(r.get("seq")), plain(r.get("severity"), ""), who,
            plain(r.get("action")), plain(r.get("target")), plain(r.get("kind"), ""),
            plain(r.get("result")))
        if r.get("reason"):
            line += " (" + plain(r["reason"]) + ")"
        lines.append(line)
    lines.append("%d record(s)" % len(rows))
    emit(rows, args.json, "\n".join(lines))
    return 0


def _export(args: argparse.Namespace) -> int:
    rows = _selected(args)
    buf = io.StringIO()
    if args.format == "jsonl":
        for r in rows:
            buf.write(json.dumps(r, sort_keys=True) + "\n")
    else:
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            row = dict(r, time=iso(r.get("ts")), params=json.dumps(r.get("params", {}),
                                                                   sort_keys=True))
            w.writerow({k: csv_cell(row.get(k)) for k in CSV_FIELDS})
    if args.output:
        write_output(args.output, buf.getvalue())
        print("%d record(s) written to %s" % (len(rows), args.output), file=sys.stderr)
    else:
        sys.stdout.write(buf.getvalue())
    return 0
