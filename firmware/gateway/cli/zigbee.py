"""`mamori-gateway zigbee ...`: open the install-code join window of the running gateway."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.installcode import link_key
from firmware.core.errors import ConfigError
from firmware.device.credentials import load as load_credentials
from firmware.gateway.runtime import control
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve
from firmware.gateway.zigbee.joinpolicy import MAX_WINDOW as MAX_SECONDS


def register(sub: Any) -> None:
    """Add `zigbee permit` and `zigbee sim-join`."""
    p = sub.add_parser("zigbee")
    zsub = p.add_subparsers(dest="zigbee_command", metavar="ACTION")
    zsub.required = True
    pp = zsub.add_parser("permit", help="let the one device of these credentials join with its "
                                        "install code for N seconds (every other join is "
                                        "refused and reported)")
    add_state_dir_arg(pp)
    pp.add_argument("--credentials", type=Path, required=True, metavar="FILE",
                    help="the device's Zigbee credentials from `mamori provision device`")
    pp.add_argument("--seconds", type=int, default=120, help="window length (1..%d, default "
                                                             "120)" % MAX_SECONDS)
    pp.add_argument("--interval", type=float, default=60.0,
                    help="the device's reporting interval in seconds (liveness), default 60")
    pp.add_argument("--json", action="store_true")
    pp.set_defaults(func=_permit)
    sj = zsub.add_parser("sim-join", help="sim board: a device tries to join (demo of a rogue "
                                          "join)")
    add_state_dir_arg(sj)
    who = sj.add_mutually_exclusive_group(required=True)
    who.add_argument("--credentials", type=Path, metavar="FILE",
                     help="the device of these Zigbee credentials joins with its install code")
    who.add_argument("--ieee", help="EUI-64 of a (rogue) joining device")
    sj.add_argument("--key", default="", help="with --ieee: link key it uses, hex (default none)")
    sj.add_argument("--json", action="store_true")
    sj.set_defaults(func=_sim_join)


def _permit(args: argparse.Namespace) -> int:
    if not 1 <= args.seconds <= MAX_SECONDS:
        raise ConfigError("--seconds must be 1..%d" % MAX_SECONDS)
    creds = load_credentials(args.credentials)
    if creds.get("transport") != "zigbee":
        raise ConfigError("credentials are for %s, not zigbee" % creds.get("transport"),
                          str(args.credentials))
    res = control.request(resolve(args.state_dir), "zigbee.permit",
                          {"credentials": creds, "seconds": args.seconds,
                           "interval": args.interval})
    emit(res, args.json, "join window open for %s (%s) for %d s"
         % (res["device"], res["ieee"], res["seconds"]))
    return 0


def _sim_join(args: argparse.Namespace) -> int:
    ieee, key = args.ieee, args.key
    if args.credentials is not None:
        if key:
            raise ConfigError("--key goes with --ieee; --credentials brings the device's key")
        creds = load_credentials(args.credentials)
        if creds.get("transport") != "zigbee":
            raise ConfigError("credentials are for %s, not zigbee" % creds.get("transport"),
                              str(args.credentials))
        ieee = creds["ieee"]
        key = link_key(bytes.fromhex(creds["install_code"])).hex()
    res = control.request(resolve(args.state_dir), "zigbee.sim-join", {"ieee": ieee, "key": key})
    if res["joined"]:
        emit(res, args.json, "%s joined" % res["ieee"])
        return 0
    emit(res, args.json, "%s was refused: %s (reported as rogue.zigbee)%s" % (
        res["ieee"], res.get("reason") or "not admitted",
        "; open its window first: mamori-gateway zigbee permit --state-dir DIR --credentials "
        "FILE" if "window" in str(res.get("reason", "")) else ""))
    return 2
