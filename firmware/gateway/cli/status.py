"""`mamori-gateway status`: what a running (or the last) gateway reports."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from firmware.common.cli import emit
from firmware.common.cli import plain as _v
from firmware.common.version import software_version
from firmware.core.errors import ConfigError, StateError
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
    doc["radios"] = radios_view(doc)
    return doc


def radios_view(doc: dict[str, Any]) -> dict[str, Any]:
    """Per radio (BLE, Zigbee): backend, library and version, controller state."""
    out = {}
    for name in ("ble", "zigbee"):
        svc = doc.get(name)
        if isinstance(svc, dict):
            out[name] = {k: svc.get(k) for k in ("backend", "library", "version",
                                                   "controller")}
            if svc.get("error"):
                out[name]["error"] = svc["error"]
    return out


def render(doc: dict[str, Any], events: int = 10) -> str:
    """The status as a person reads it."""
    gw = doc["gateway"]
    lines = ["gateway  board %s, %s (pid %s, up %s s, status %s s old)%s"
             % (_v(gw.get("board")), _v(gw.get("state")), _v(gw.get("pid")),
                _v(gw.get("uptime_s")), _v(doc.get("age_s")),
                "" if gw.get("health", "ok") == "ok" else ", " + _v(gw.get("health")))]
    lan = doc.get("lan") or {}
    if lan:
        lines.append("lan      %s:%s  tls %s, %s sessions, %s refused"
                     % (_v(lan.get("host")), _v(lan.get("port")), _v(lan.get("tls")),
                        _v(lan.get("sessions"), "0"), _v(lan.get("refused"), "0")))
    fw = doc.get("firmware") or {}
    if fw:
        about = [_v(fw.get("source"), "installed")] + (["slot " + str(fw["slot"])]
                                                        if fw.get("slot") else [])
        lines.append("firmware %s (%s, %s)" % (_v(fw.get("version"), software_version()),
                                               ", ".join(about), _v(fw.get("state"), "idle")))
    wan = doc.get("wan") or {}
    if wan:
        lines.append("wan      %s  connected %s, queue %s"
                     % (_v(wan.get("broker")), _v(wan.get("connected")),
                        _v((wan.get("queue") or {}).get("depth"), "0")))
    mon = (doc.get("monitor") or {}).get("rogue") or {}
    if mon:
        counts = mon.get("counts") or {}
        lines.append("monitor  rogue reported %s, observed %s, blocked %d"
                     % (_v(counts.get("reported"), "0"), _v(counts.get("observed"), "0"),
                        len(mon.get("blocked", []))))
    crl = doc.get("crl") or {}
    if crl:
        lines.append("crl      number %s, %s, next update %s, %s revoked"
                     % (_v(crl.get("number")), _v(crl.get("state")), _v(crl.get("next_update")),
                        _v(crl.get("revoked"))))
    for name, r in (doc.get("radios") or {}).items():
        lines.append("%-8s %s via %s %s, controller %s%s"
                     % (name, _v(r.get("backend")), _v(r.get("library")), _v(r.get("version")),
                        _v((r.get("controller") or {}).get("state")),
                        " (%s)" % _v(r["error"]) if r.get("error") else ""))
    devices = doc.get("devices", [])
    states: dict[str, int] = {}
    for d in devices:
        states[d.get("state", "?")] = states.get(d.get("state", "?"), 0) + 1
    lines.append("devices  %d%s" % (len(devices), " (%s)" % ", ".join(
        "%d %s" % (n, st) for st, n in sorted(states.items())) if devices else ""))
    for d in devices:
        lines.append("  %-20s %-8s %-10s %s" % (d["id"], _v(d.get("transport")),
                                                _v(d.get("state")), _v(d.get("reason"), "")))
    recent = doc.get("events", [])[-events:] if events > 0 else []
    if recent:
        lines.append("recent events")
        for e in recent:
            lines.append("  %s %-8s %-24s %s %s" % (
                time.strftime("%H:%M:%S", time.gmtime(e["ts"])), e["severity"], e["kind"],
                e.get("target", ""), e.get("reason", "")))
    return "\n".join(lines)


def _status(args: argparse.Namespace) -> int:
    if args.events < 0:
        raise ConfigError("--events must be 0 or more")
    doc = read_status(args.state_dir)
    emit(doc, args.json, render(doc, args.events))
    return 0 if doc["gateway"]["running"] else 3
