"""After the slot verified: production config, the core's self-check, the gateway loop."""

import json
import sys

from firmware.core import selfcheck
from firmware.micropython import adapters, gateway, production

TICK_SECONDS = 1.0


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def seal_key(storage):
    """(key0, "") for the access log: from the installation bundle, else the CSPRNG."""
    bundle = storage.read("installation.bundle")
    if bundle:
        return adapters.hkdf(bundle, b"mamori mcu accesslog key0"), ""
    rnd = adapters.random_bytes(32)
    if rnd is not None:
        return rnd, ""
    return None, "no installation bundle and no random source on this port"


def run(state, ticks=None, out=print):
    """Run the boot steps; loop forever when TICKS is None. Returns a report dict."""
    report = {}
    prod = _load(state + "/production.json")
    lines = production.apply(prod)
    for ln in lines:
        out("mamori: " + ln)
    report["production"] = lines
    sc = selfcheck.run()
    report["selfcheck"] = selfcheck.line(sc)
    out("mamori: " + report["selfcheck"])
    if not sc["ok"]:
        report["refused"] = report["selfcheck"]
        return report
    storage = adapters.Storage(state)
    net, why = adapters.network()
    if net is None:
        out("mamori: network: none (" + why + ")")
    key0, key_why = seal_key(storage)
    board = {"name": (prod or {}).get("board", sys.platform)}
    gw = gateway.MiniGateway(storage, adapters.clock, adapters.monotonic, net, why, key0,
                             key_why, board)
    out("mamori: gateway loop started (network %s, access log %s)"
        % (gw.status["network"], gw.status["accesslog"]))
    n = 0
    try:
        while ticks is None or n < ticks:
            gw.tick()
            n += 1
            if ticks is None or n < ticks:
                adapters.sleep(TICK_SECONDS)
    finally:
        report["gateway"] = gw.stop()
    report["ok"] = True
    return report
