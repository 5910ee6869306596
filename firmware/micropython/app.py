"""After the slot verified: production config, the core's self-check, the gateway loop."""

import json
import sys

from firmware.core import selfcheck
from firmware.micropython import adapters, gateway, lan, production

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


def run(state, ticks=None, out=print, lan_addr=None):
    """Run the boot steps; loop forever when TICKS is None. Returns a report dict.

    LAN_ADDR: (host, port) the device LAN listens on (default: every interface, port 8883).
    """
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
    net, why = lan.open_lan(storage, lan_addr or ("0.0.0.0", lan.LAN_PORT),  # noqa: S104
                            adapters.monotonic)
    if net is None:
        out("mamori: network: none (" + why + ")")
    else:
        out("mamori: lan: mutual TLS on %s, device list #%d (%d devices, %d revoked)"
            % (net.addr, net.devices.number, len(net.devices.devices),
               len(net.devices.revoked)))
    key0, key_why = seal_key(storage)
    board = {"name": (prod or {}).get("board", sys.platform)}
    gw = gateway.MiniGateway(storage, adapters.clock, adapters.monotonic, net, why, key0,
                             key_why, board, say=lambda text: out("mamori: " + text))
    out("mamori: gateway loop started (network %s, access log %s)"
        % (gw.status["network"], gw.status["accesslog"]))
    n = 0
    try:
        while ticks is None or n < ticks:
            gw.tick()
            n += 1
            if ticks is None or n < ticks:
                gw.wait(TICK_SECONDS, adapters.sleep)
    finally:
        report["gateway"] = gw.stop()
    report["ok"] = True
    return report
