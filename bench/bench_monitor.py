"""Monitoring cost: 1,000 devices heartbeating every 10 s against the real gateway vs a bare server.

Two server processes are measured one after the other, each pinned to one core, each receiving
the same traffic from a separate client process (1,000 loopback TCP connections, hello then one
heartbeat frame every 10 s per device, staggered: 100 heartbeats/s, the real rate, no time
compression) for WINDOW seconds:

- gateway: the real ``Gateway`` + ``LanService`` (authentication, liveness, device info) +
  ``MonitorService``, with its housekeeping (liveness ticks, status.json every second);
- bare: an asyncio server that only decodes the frames and answers the hello.

Reported as ratios gateway/bare: CPU share of the server process (utime+stime from
/proc/PID/stat over the window), RSS at the end, and event latency (heartbeat sent → liveness
updated in the gateway; → frame decoded in the bare server), p50 and p99, on CLOCK_MONOTONIC
shared by both processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEVICES = 1000
INTERVAL = 10.0
WINDOW = 25.0
ROOT = Path(__file__).resolve().parents[1]


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * DEVICES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _ids() -> list[str]:
    return ["dev-%04d" % i for i in range(DEVICES)]


# -- servers (run in a child process) ------------------------------------------------------
async def _gateway_server(out: Path) -> None:
    from firmware.common.boards import load_board
    from firmware.gateway.lan.service import LanService, registry_authorizer
    from firmware.gateway.monitor.service import MonitorService
    from firmware.gateway.runtime.config import GatewayConfig
    from firmware.gateway.runtime.gateway import Gateway

    state = Path(tempfile.mkdtemp(prefix="mamori-bench-mon-"))
    gw = Gateway(GatewayConfig("sim", state), load_board("sim"))
    ident = {i: {"id": i, "transport": "ip", "interval": INTERVAL, "level": 2} for i in _ids()}
    lan = LanService(gw, authorizer=registry_authorizer(gw, ident), max_sessions=DEVICES + 10)
    mon = MonitorService(gw, lan=lan)
    lat: list[float] = []
    orig = lan._dispatch

    def dispatch(session: Any, msg: dict[str, Any]) -> None:
        orig(session, msg)  # liveness updated inside (gw.device_seen)
        if msg.get("type") == "hb" and "t" in msg:
            lat.append(time.monotonic() - float(msg["t"]))

    lan._dispatch = dispatch  # type: ignore[method-assign]

    async def announce() -> None:
        while lan._server is None:
            await asyncio.sleep(0.01)
        print(lan.port, flush=True)

    task = asyncio.create_task(announce())
    try:
        await gw.run([mon, lan])
        await task
    finally:
        out.write_text(json.dumps(lat))


async def _bare_server(out: Path) -> None:
    from firmware.core import frames

    lat: list[float] = []
    stop = asyncio.Event()

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dec = frames.FrameDecoder()
        try:
            while data := await reader.read(4096):
                for msg in dec.feed(data):
                    if msg["type"] == "hello":
                        writer.write(frames.encode({"type": "welcome", "gateway": "bare"}))
                    elif msg["type"] == "hb" and "t" in msg:
                        lat.append(time.monotonic() - float(msg["t"]))
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    out.write_text(json.dumps(lat))


# -- client (a child process too) -----------------------------------------------------------
async def _client(port: int) -> None:
    from firmware.core import frames

    gate = asyncio.Semaphore(50)
    go = asyncio.Event()
    writers = []

    async def device(dev_id: str, offset: float) -> None:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(frames.encode({"type": "hello", "id": dev_id, "interval": INTERVAL}))
            dec = frames.FrameDecoder()
            while not dec.feed(await reader.read(4096)):
                pass
        writers.append(writer)
        await go.wait()
        await asyncio.sleep(offset)
        seq = 0
        while True:
            seq += 1
            writer.write(frames.encode({"type": "hb", "seq": seq, "t": time.monotonic(),
                                        "state": {"armed": True, "open": False}}))
            await asyncio.sleep(INTERVAL)

    tasks = [asyncio.create_task(device(d, INTERVAL * i / DEVICES))
             for i, d in enumerate(_ids())]
    while len(writers) < DEVICES:
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    go.set()
    await asyncio.gather(*tasks)


# -- measurement ---------------------------------------------------------------------------
def _cpu_s(pid: int) -> float:
    fields = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measure(kind: str) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(prefix="mamori-bench-lat-")[1])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, __file__, "serve", kind, str(out)], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(server.pid, {cores[0]})
        client = subprocess.Popen([sys.executable, __file__, "client", str(port)], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, text=True)
        if len(cores) > 1:
            os.sched_setaffinity(client.pid, set(cores[1:]))
        assert client.stdout is not None
        if client.stdout.readline().strip() != "ready":
            raise RuntimeError("bench client failed to connect its devices")
        cpu0, t0 = _cpu_s(server.pid), time.monotonic()
        time.sleep(WINDOW)
        cpu1, t1 = _cpu_s(server.pid), time.monotonic()
        rss = _rss_mib(server.pid)
    finally:
        if client is not None:
            client.kill()
            client.wait()
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    lat = sorted(json.loads(out.read_text() or "[]"))
    out.unlink()
    if not lat:
        raise RuntimeError("no heartbeat latencies recorded by the %s server" % kind)
    return {"cpu_pct": 100.0 * (cpu1 - cpu0) / (t1 - t0), "rss_mib": rss,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "hb": len(lat)}


def run() -> list[dict]:
    """Measure the gateway and the bare server one after the other (about 70 s)."""
    if not Path("/proc/self/stat").exists():
        return []
    gw = _measure("gateway")
    bare = _measure("bare")

    def row(name: str, unit: str, key: str, **extra: Any) -> dict[str, Any]:
        base = max(bare[key], 1e-6)
        return {"name": name, "unit": unit, "value": round(gw[key], 3),
                "baseline_name": "bare_asyncio_" + key, "baseline": round(bare[key], 3),
                "ratio": round(gw[key] / base, 2), "devices": DEVICES, "interval_s": INTERVAL,
                "window_s": WINDOW, **extra}

    return [
        row("monitor_server_cpu_share", "%", "cpu_pct", heartbeats=gw["hb"],
            baseline_heartbeats=bare["hb"]),
        row("monitor_server_rss", "MiB", "rss_mib"),
        row("monitor_hb_to_liveness_p50", "ms", "p50_ms"),
        row("monitor_hb_to_liveness_p99", "ms", "p99_ms"),
    ]


def _main(argv: list[str]) -> None:
    _raise_nofile()
    if argv[:1] == ["serve"]:
        fn = _gateway_server if argv[1] == "gateway" else _bare_server
        asyncio.run(fn(Path(argv[2])))
    elif argv[:1] == ["client"]:
        asyncio.run(_client(int(argv[1])))
    else:
        for r in run():
            print(json.dumps(r))


if __name__ == "__main__":
    _main(sys.argv[1:])
