"""Monitoring check: a synthetic rogue join and a silent device raise alerts (SR2-H-4, UK10).

A scratch gateway on the scratch state copy runs the access-log service and the monitor services
the composition would build (``monitor/wiring.py``). The check injects an ``auth.refused`` LAN
admission failure and a ``rogue.zigbee`` join, registers a device and advances the liveness
clock past its offline deadline; the alerts must be recorded in the (scratch) access log and be
classified as alerts by the WAN uplink's routing (``wan/service.py: event_route``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

from firmware.common.accesslog.reader import records
from firmware.common.accesslog.source import open_source
from firmware.common.boardprofile import Board
from firmware.core.errors import MamoriError
from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.monitor.service import MonitorService
from firmware.gateway.monitor.wiring import monitor_services
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed
from firmware.gateway.selftest.scratchgw import ScratchGateway, stand_in_board
from firmware.gateway.wan.service import event_route

STATUS_FILE = "run/status.json"
# A silent device must be reported offline within this many heartbeat intervals.
MAX_OFFLINE_FACTOR = 10.0
PROBE_INTERVAL = 30.0


def _live_status(ctx: CheckContext) -> dict[str, Any]:
    try:
        data = json.loads((ctx.live_state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _board(ctx: CheckContext) -> Board:
    try:
        return ctx.board()
    except MamoriError:
        return stand_in_board(ctx.board_name or "unknown")


def factor_problems(factors: dict[Any, Any], level: int) -> list[str]:
    """Liveness factors that would let a silent device go unreported (or flap)."""
    pair = factors.get(level, factors.get(2))
    if not pair or len(pair) != 2:
        return [f"no liveness factors for level {level}"]
    suspect, offline = float(pair[0]), float(pair[1])
    out = []
    if suspect < 1.0:
        out.append(f"suspect factor {suspect:g} is below one interval (devices would flap)")
    if offline <= suspect:
        out.append(f"offline factor {offline:g} is not above the suspect factor {suspect:g}")
    if offline > MAX_OFFLINE_FACTOR:
        out.append(f"offline factor {offline:g} exceeds {MAX_OFFLINE_FACTOR:g} intervals: a silent "
                   "device would be reported far too late")
    return out


async def _exercise(gw: ScratchGateway, monitor: MonitorService, peer: str, ieee: str,
                    device: str, level: int) -> None:
    await monitor.start()
    try:
        gw.emit(Event("auth.refused", "alert", "lan", principal="", action="connect",
                      target=peer + ":49152", result="refused",
                      reason="synthetic self-test join: no client certificate"))
        gw.emit(Event("rogue.zigbee", "alert", "zigbee", principal=ieee, action="join",
                      target=ieee, result="rejected",
                      reason="synthetic self-test join with no join window open"))
        gw.register_device(device, "ip", PROBE_INTERVAL, level)
        gw.device_seen(device)
        later = time.monotonic() + PROBE_INTERVAL * MAX_OFFLINE_FACTOR + 1.0
        # what the runtime's housekeeping does each second, with the clock advanced
        for move in gw.liveness.tick(later):
            gw._liveness_event(move)
        monitor.tick()
    finally:
        await monitor.stop()


@check("monitor.rogue-and-liveness", "A synthetic rogue join and a silent device raise alerts",
       requirements=["SR2-H-4", "UK10"],
       remediation="keep the monitor service in the composition (monitor/wiring.py), keep the "
                   "liveness factors at their defaults (firmware/core/liveness.py), and keep "
                   "the access log and WAN uplink subscribed to the bus")
def rogue_and_liveness(ctx: CheckContext) -> Outcome:
    """Inject a rogue LAN join, a rogue Zigbee join and a silent device on a scratch gateway."""
    problems: list[str] = []
    st = _live_status(ctx)
    if st.get("lan") is not None and "monitor" not in st:
        problems.append("the running gateway has a LAN service but no monitor service "
                        "(run/status.json)")
    board = _board(ctx)
    gw = ScratchGateway(ctx.scratch(), board)
    problems += factor_problems(gw.liveness.factors, ctx.level)
    monitors = [s for s in monitor_services(gw, None) if isinstance(s, MonitorService)]
    if not monitors:
        return failed("monitoring is disabled: the composition builds no monitor service",
                      *problems)
    try:
        log = AccessLogService(gw)
        log.open()
    except MamoriError as exc:
        return inconclusive(f"cannot open a scratch access log: {exc}")
    tag = secrets.token_hex(3)
    peer, ieee, device = "198.51.100.%d" % (secrets.randbelow(200) + 20), \
        "00:12:4b:00:5e:1f:%s:%s" % (tag[:2], tag[2:4]), "selftest-silent-" + tag
    try:
        asyncio.run(_exercise(gw, monitors[0], peer, ieee, device, ctx.level))
        log.store.checkpoint("selftest")
    finally:
        log.store.close()
    evidence: list[str] = []
    wanted = {
        "rogue LAN join": lambda e: e.kind == "rogue.device" and e.target == peer,
        "rogue Zigbee join": lambda e: e.kind == "rogue.device" and e.target == ieee,
        "silent device": lambda e: e.kind == "device.offline" and e.target == device,
    }
    try:
        logged = [r for r in records(open_source(ctx.scratch()))
                  if r.get("target") in (peer, ieee, device)]
    except MamoriError as exc:
        return failed(f"the scratch access log cannot be read back: {exc}", *problems)
    for what, match in wanted.items():
        ev = next((e for e in gw.events if match(e)), None)
        if ev is None:
            problems.append(f"{what}: no alert was raised")
            continue
        route = event_route(ev)
        if route is None or route[0] != "alerts":
            problems.append(f"{what}: {ev.kind} ({ev.severity}) would not reach the platform "
                            "as an alert")
        rec = next((r for r in logged if r.get("kind") == ev.kind and
                    r.get("target") == ev.target), None)
        if rec is None:
            problems.append(f"{what}: {ev.kind} is not in the access log")
            continue
        evidence.append(f"{what}: {ev.kind} {ev.severity} ({ev.reason}) -> access log seq "
                        f"{rec.get('seq')}, WAN stream {route[0] if route else 'none'}")
    if problems:
        return failed(*problems, *evidence)
    f = gw.liveness.factors.get(ctx.level) or gw.liveness.factors[2]
    return passed(*evidence, f"liveness factors at level {ctx.level}: suspect {f[0]:g}, "
                  f"offline {f[1]:g} intervals; scratch gateway and log only")
