"""`micropython -m firmware.device.portable.mpycli`: the MicroPython device agent as a command.

A device maker embeds ``firmware.device.portable.mpyagent`` (credentials, link, session loop);
this command runs it on the unix port for tests, benchmarks and the bench: ``--credentials
OUT.mpy.json --gateway HOST:PORT [--kind K] [--interval S] [--once | --heartbeats N] [--mem]``.
Prints one JSON line (the session, or the error) and exits 0, or 1 with the reason on stderr.
"""

import sys

try:
    from typing import Any  # noqa: F401 - in a type comment
except ImportError:  # MicroPython: annotations are not evaluated
    pass
from firmware.core.errors import ConfigError, MamoriError
from firmware.device.portable.agent import ACTUATORS
from firmware.device.portable.mpyagent import (
    Clock,
    Link,
    drive,
    load_credentials,
    new_agent,
    run_forever,
)

USAGE = ("usage: micropython -m firmware.device.portable.mpycli --credentials FILE.mpy.json "
         "--gateway HOST:PORT [--kind lock|shutter|sensor] [--interval S] [--once | "
         "--heartbeats N] [--mem]")


def parse_args(argv: list) -> dict:
    """The command line (the port has no argparse); ConfigError for anything else."""
    opts = {"kind": "sensor", "interval": 10.0, "heartbeats": None,
            "mem": False}  # type: dict[str, Any]
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--once", "--mem"):
            if a == "--once":
                opts["heartbeats"] = 1
            else:
                opts["mem"] = True
            i += 1
            continue
        if a not in ("--credentials", "--gateway", "--kind", "--interval", "--heartbeats") \
                or i + 1 >= len(argv):
            raise ConfigError("unexpected argument %r" % a[:40], hint=USAGE)
        opts[a[2:]] = argv[i + 1]
        i += 2
    for need in ("credentials", "gateway"):
        if need not in opts:
            raise ConfigError("--%s is required" % need, hint=USAGE)
    host, sep, port = str(opts["gateway"]).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError("--gateway must be HOST:PORT, got %r" % str(opts["gateway"])[:64])
    opts["host"], opts["port"] = host.strip("[]"), int(port)
    if opts["kind"] not in ACTUATORS:
        raise ConfigError("--kind must be one of " + ", ".join(sorted(ACTUATORS)))
    try:
        opts["interval"] = float(opts["interval"])
        if opts["heartbeats"] is not None:
            opts["heartbeats"] = int(opts["heartbeats"])
    except ValueError:
        raise ConfigError("--interval and --heartbeats must be numbers")
    if not 0.1 <= opts["interval"] <= 86400:
        raise ConfigError("--interval must be between 0.1 and 86400 seconds")
    return opts


def heap() -> dict:
    """Heap in use after a collection, and the peak, in bytes (MicroPython's own counters)."""
    import gc

    gc.collect()
    out = {"heap_used": gc.mem_alloc()}  # type: ignore[attr-defined]
    try:
        import micropython

        out["heap_peak"] = micropython.mem_peak()
    except (ImportError, AttributeError):
        pass
    return out


def main(argv: list) -> int:
    """Run the agent; exit 0 after --once/--heartbeats, non-zero with the reason otherwise."""
    import json

    try:
        opts = parse_args(argv)
        creds = load_credentials(opts["credentials"])
        agent = new_agent(creds, opts["kind"], opts["interval"])
        if opts["heartbeats"] is None:
            run_forever(agent, opts["host"], opts["port"], creds)
            return 0
        link = Link(opts["host"], opts["port"], creds)
        try:
            sent = drive(agent, link, Clock(), opts["heartbeats"])
            result = {"device": agent.device_id, "gateway": agent.gateway, "heartbeats": sent,
                      "tls": list(link.cipher) if link.cipher else None,
                      "verifies": agent.guard.algorithms(), "ok": True}
            if opts["mem"]:
                result.update(heap())
        finally:
            link.close()
        print(json.dumps(result))
        return 0
    except MamoriError as exc:
        print(json.dumps(exc.to_dict()))
        sys.stderr.write("error: %s\n" % exc)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
