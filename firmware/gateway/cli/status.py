"""`mamori-gateway status`: what a running (or the last) gateway reports."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from firmware.common.cli import emit
from firmware.core.errors import StateError
from firmware.gateway.runtime.gateway import STATUS_FILE
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve


def register(sub: Any) -> None:
    """Add the `status` command."""
    p = sub.add_parser("status")
    add_state_dir_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--events", type=int, default=10, help="recent events to show (text)")
    p.set_defaults(func=_status)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_status(state_dir: Any) -> dict[str, Any]:
    """Load run/status.json and mark whether the gateway is still running."""
    path = resolve(state_dir) / STATUS_FILE
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise StateError("no gateway status at %s" % path,
                         "start one with `mamori-gateway run --board sim --state-dir DIR`")
    except ValueError:
        raise StateError("status file %s is unreadable" % path)
    gw = doc.setdefault("gateway", {})
    running = gw.get("state") != "stopped" and _alive(int(gw.get("pid", 0) or 0))
    gw["running"] = running
    if not running and gw.get("state") != "stopped":
        gw["state"] = "dead"
    doc["age_s"] = round(time.time() - float(doc.get("updated_at", 0)), 1)
    return doc


def _status(args: argparse.Namespace) -> int:
    doc = read_status(args.state_dir)
    gw = doc["gateway"]
    lines = ["gateway  board %s, %s (pid %s, up %ss, status %ss old)"
             % (gw.get("board"), gw.get("state"), gw.get("pid"), gw.get("uptime_s"),
                doc["age_s"])]
    lan = doc.get("lan") or {}
    if lan:
        lines.append("lan      %s:%s tls=%s sessions=%s refused=%s"
                     % (lan.get("host"), lan.get("port"), lan.get("tls"), lan.get("sessions"),
                        lan.get("refused")))
    fw = doc.get("firmware") or {}
    if fw:
        lines.append("firmware %s (slot %s, %s)" % (fw.get("version"), fw.get("slot"),
                                                   fw.get("state", "")))
    wan = doc.get("wan") or {}
    if wan:
        lines.append("wan      %s connected=%s queue=%s"
                     % (wan.get("broker"), wan.get("connected"),
                        (wan.get("queue") or {}).get("depth")))
    mon = (doc.get("monitor") or {}).get("rogue") or {}
    if mon:
        lines.append("monitor  rogue reported=%s observed=%s blocked=%d"
                     % ((mon.get("counts") or {}).get("reported"),
                        (mon.get("counts") or {}).get("observed"), len(mon.get("blocked", []))))
    lines.append("devices  %d" % len(doc.get("devices", [])))
    for d in doc.get("devices", []):
        lines.append("  %-20s %-8s %-9s %s" % (d["id"], d["transport"], d["state"],
                                              d.get("reason", "")))
    events = doc.get("events", [])[-args.events:]
    if events:
        lines.append("recent events")
        for e in events:
            lines.append("  %s %-8s %-24s %s %s" % (
                time.strftime("%H:%M:%S", time.gmtime(e["ts"])), e["severity"], e["kind"],
                e.get("target", ""), e.get("reason", "")))
    emit(doc, args.json, "\n".join(lines))
    return 0 if gw["running"] else 3
