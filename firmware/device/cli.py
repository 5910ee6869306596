"""`mamori-device`: the device agent as a command (what device makers embed, and a test peer)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from firmware.core import strictjson
from firmware.core.errors import ConfigError, MamoriError, ProtocolError
from firmware.device import credentials
from firmware.device.portable.agent import ACTUATORS, DeviceAgent
from firmware.device.runner import run_forever, run_session


def _endpoint(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--gateway must be HOST:PORT, got %r" % value)
    return host.strip("[]"), int(port)


def parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = argparse.ArgumentParser(prog="mamori-device",
                                description="Mamori device agent: authenticate to a gateway, "
                                            "heartbeat, execute commands.")
    p.add_argument("--credentials", type=Path, required=True, metavar="FILE",
                   help="credential file from `mamori provision device`")
    p.add_argument("--gateway", required=True, metavar="HOST:PORT",
                   help="the gateway's LAN endpoint (lan.host / lan.port in its status)")
    p.add_argument("--kind", default="sensor", choices=sorted(ACTUATORS),
                   help="what the device simulates (default: sensor)")
    p.add_argument("--interval", type=float, default=10.0, help="heartbeat interval (s)")
    p.add_argument("--once", action="store_true",
                   help="authenticate, exchange one heartbeat, exit 0")
    p.add_argument("--ticket", type=Path, default=None, metavar="FILE",
                   help="one-time installation ticket from `mamori provision install-secret`, "
                        "presented on the first connection; its secret is read from "
                        "FILE.secret.txt when present, else from stdin (never from argv)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    return p


MAX_TICKET = 64 * 1024
SECRET_RE = re.compile(r"\b[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}\b")


def load_ticket(path: Path) -> tuple[dict, str]:
    """The ticket document and its one-time secret (from FILE.secret.txt or stdin)."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_TICKET + 1)
    except FileNotFoundError:
        raise ConfigError("ticket file not found", str(path))
    except OSError as exc:
        raise ConfigError("ticket file is unreadable (%s)" % (exc.strerror or exc), str(path))
    try:
        ticket = strictjson.loads(raw, "ticket file", 4, MAX_TICKET)
    except ProtocolError as exc:
        raise ConfigError(exc.message, str(path))
    if not isinstance(ticket, dict) or ticket.get("kind") != "mamori-install-ticket":
        raise ConfigError("is not a Mamori installation ticket", str(path))
    secret_file = path.with_name(path.name + ".secret.txt")
    if secret_file.is_file():
        text = secret_file.read_text()
    elif sys.stdin.isatty():
        text = getpass.getpass("installation secret: ")
    else:
        text = sys.stdin.readline()
    found = SECRET_RE.search(text.upper())
    secret = found.group(0) if found else text.strip()
    if not secret:
        raise ConfigError("no installation secret given", str(path),
                          hint="type the code printed with the ticket")
    return ticket, secret


_SAY = {"connecting": "connecting to the gateway at %(gw)s",
        "connected": "%(detail)s",
        "refused": "refused: %(detail)s",
        "unreachable": "%(detail)s",
        "closed": "%(detail)s",
        "retrying": "%(detail)s"}


def _reporter(device: str, gateway: str, as_json: bool) -> Callable[[str, str], None]:
    """Say what the agent is doing and why: a line on stderr (JSON lines on stdout with --json)."""

    def report(what: str, detail: str) -> None:
        if as_json:
            print(json.dumps({"device": device, "gateway": gateway, "event": what,
                              "detail": detail, "ts": round(time.time(), 3)}), flush=True)
        else:
            print("mamori-device %s: %s" % (device, _SAY.get(what, "%(detail)s")
                                            % {"gw": gateway, "detail": detail}),
                  file=sys.stderr, flush=True)

    return report


def main(argv: Sequence[str] | None = None) -> int:
    """Run the agent; exit 0 on success, non-zero with the reason on stderr."""
    args = parser().parse_args(argv)
    try:
        host, port = _endpoint(args.gateway)
        creds = credentials.load(args.credentials)
        ctx = credentials.tls_context(creds)
        pin = credentials.gateway_pin(creds)  # an unpinned credential is refused here
        ticket, secret = load_ticket(args.ticket) if args.ticket else (None, None)
        agent = DeviceAgent(creds["device_id"], kind=args.kind, interval=args.interval,
                            maker=creds.get("maker", ""), model=creds.get("model", ""),
                            transport="ip", ticket=ticket, secret=secret,
                            guard=credentials.three_star_guard(creds, pin.gateway_id))
        if args.once:
            sent = asyncio.run(run_session(agent, host, port, ctx, heartbeats=1, pin=pin))
            result = {"device": agent.device_id, "gateway": agent.gateway, "heartbeats": sent,
                      "ok": True}
            print(json.dumps(result) if args.json else
                  "authenticated to gateway %s, %d heartbeat sent" % (agent.gateway or "?", sent))
            return 0
        asyncio.run(run_forever(agent, host, port, ctx, pin=pin,
                                report=_reporter(agent.device_id, args.gateway, args.json)))
        return 0
    except MamoriError as exc:
        if args.json:
            print(json.dumps(exc.to_dict()))
        print("error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
