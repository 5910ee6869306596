"""Device sessions at scale: 1,000 mutual-TLS devices heartbeating every 10 s, the real gateway
vs a bare asyncio + `ssl` server doing the same sessions (issue 17).

Two server processes are measured one after the other, each pinned to one core, each receiving
the same traffic from a separate client process: DEVICES loopback TLS 1.3 connections, each with
its own device certificate issued by the bench site, hello then one heartbeat frame every
INTERVAL s per device, staggered (100 heartbeats/s at full size: the real rate, no time
compression), for WINDOW seconds once every device is connected:

- gateway: the real ``Gateway`` + ``LanService`` (the installed site identity, mutual TLS with
  CRL, ``DeviceAuthorizer``: revocation, allowlist, hello consistency; liveness, device info) +
  ``MonitorService``, with its housekeeping (liveness ticks, status.json every second);
- bare: an asyncio server with the same certificate, key, CA, TLS 1.3 only, client certificate
  required, no tickets, that answers the hello and parses frames with a plain length-prefix +
  json.loads loop.

Reported as ratios gateway/bare: CPU share of the server process over the window
(utime+stime from /proc/PID/stat), RSS at the end, RSS per session (end minus before the devices
connected, divided by DEVICES), and event latency (heartbeat sent -> liveness updated in the
gateway; -> frame parsed in the bare server), p50 and p99, on CLOCK_MONOTONIC shared by both.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import pick, row  # noqa: E402

DEVICES = pick(1000, 20)
INTERVAL = pick(10.0, 1.0)
WINDOW = pick(25.0, 3.0)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * DEVICES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def _ids() -> list[str]:
    return ["dev-%04d" % i for i in range(DEVICES)]


def _setup(root: Path) -> Path:
    """A site, an installed gateway identity (root/state) and DEVICES ip device credentials."""
    from firmware.gateway.identity.install import install_bundle
    from provisioning.devices import issue_device
    from provisioning.gateway import issue_gateway
    from provisioning.site import Site

    site = Site.init(root / "site", 2, "Bench")
    site.allow("Acme", "Lock1", "ip")
    issue_gateway(site, "sim", "gw", root / "gw.bundle")
    install_bundle(root / "state", root / "gw.bundle")
    (root / "devices").mkdir()
    for dev in _ids():
        issue_device(site, "ip", "Acme", "Lock1", dev, root / "devices" / (dev + ".json"))
    return root / "state"


# -- servers (run in a child process) ------------------------------------------------------
async def _gateway_server(root: Path, out: Path) -> None:
    from firmware.common.boards import load_board
    from firmware.gateway.identity.admission import DeviceAuthorizer
    from firmware.gateway.lan.service import LanService
    from firmware.gateway.lan.tls import server_context
    from firmware.gateway.monitor.service import MonitorService
    from firmware.gateway.runtime.config import GatewayConfig
    from firmware.gateway.runtime.gateway import Gateway

    state = root / "state"
    gw = Gateway(GatewayConfig("sim", state), load_board("sim"))
    lan = LanService(gw, ssl_context=server_context(state), authorizer=DeviceAuthorizer(state),
                     max_sessions=DEVICES + 10)
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


def _bare_context(state: Path) -> ssl.SSLContext:
    """Plain ssl: same certificate, key and CA as the gateway; mutual TLS 1.3, no tickets."""
    from firmware.gateway.identity.install import IDENTITY, tls_key_passphrase

    ident = state / IDENTITY
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(ident / "ca-chain.pem"))
    passphrase = tls_key_passphrase(state)
    ctx.load_cert_chain(str(ident / "gateway.pem"), str(ident / "gateway-key.pem"),
                        password=lambda: passphrase)
    ctx.num_tickets = 0
    return ctx


async def _bare_server(root: Path, out: Path) -> None:
    lat: list[float] = []
    stop = asyncio.Event()
    welcome = b"%s%s" % (len(b'{"type": "welcome", "gateway": "bare"}').to_bytes(4, "big"),
                         b'{"type": "welcome", "gateway": "bare"}')

    async def conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while data := await reader.read(4096):
                buf += data
                while len(buf) >= 4:
                    n = int.from_bytes(buf[:4], "big")
                    if len(buf) < 4 + n:
                        break
                    msg = json.loads(buf[4:4 + n])
                    buf = buf[4 + n:]
                    if msg["type"] == "hello":
                        writer.write(welcome)
                    elif msg["type"] == "hb" and "t" in msg:
                        lat.append(time.monotonic() - float(msg["t"]))
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(conn, "127.0.0.1", 0, ssl=_bare_context(root / "state"),
                                        backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()
    out.write_text(json.dumps(lat))


# -- client (a child process too) -----------------------------------------------------------
async def _client(root: Path, port: int) -> None:
    from firmware.core import frames
    from firmware.device.credentials import load as load_credentials
    from firmware.device.credentials import tls_context as client_context

    ctxs = {d: client_context(load_credentials(root / "devices" / (d + ".json")))
            for d in _ids()}
    gate = asyncio.Semaphore(20)
    go = asyncio.Event()
    writers = []

    async def device(dev_id: str, offset: float, i: int) -> None:
        async with gate:
            # each device from its own address, as in a house (the gateway limits per address)
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctxs[dev_id],
                local_addr=("127.88.%d.%d" % (i // 250, i % 250 + 1), 0))
            writer.write(frames.encode({"type": "hello", "id": dev_id, "transport": "ip",
                                        "maker": "Acme", "model": "Lock1", "fw": "1.0",
                                        "interval": INTERVAL}))
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

    tasks = [asyncio.create_task(device(d, INTERVAL * i / DEVICES, i))
             for i, d in enumerate(_ids())]
    while len(writers) < DEVICES:
        await asyncio.sleep(0.05)
        for t in tasks:
            if t.done() and t.exception() is not None:
                raise RuntimeError("device failed to connect: %r" % t.exception())
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


def _measure(kind: str, root: Path) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(prefix="mamori-bench-lat-")[1])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen([sys.executable, __file__, "serve", kind, str(root), str(out)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    client = None
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        rss0 = _rss_mib(server.pid)
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(server.pid, {cores[0]})
        client = subprocess.Popen([sys.executable, __file__, "client", str(root), str(port)],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
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
            "rss_kib_per_session": 1024 * (rss - rss0) / DEVICES,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], "hb": len(lat)}


def run() -> list[dict[str, Any]]:
    """Measure the gateway and the bare server one after the other (about 90 s at full size)."""
    if not Path("/proc/self/stat").exists():
        return []
    root = Path(tempfile.mkdtemp(prefix="mamori-bench-sessions-"))
    try:
        _setup(root)
        gw = _measure("gateway", root)
        bare = _measure("bare", root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def fig(name: str, unit: str, key: str, **extra: Any) -> dict[str, Any]:
        return row(name, unit, gw[key], "bare asyncio + ssl server, same sessions: " + key,
                   max(bare[key], 1e-6), higher_is_better=False, devices=DEVICES,
                   interval_s=INTERVAL, window_s=WINDOW, **extra)

    return [
        fig("sessions_mtls_server_cpu_share", "%", "cpu_pct", heartbeats=gw["hb"],
            baseline_heartbeats=bare["hb"], goal="ratio <= 2"),
        fig("sessions_mtls_server_rss", "MiB", "rss_mib", goal="ratio <= 1.5"),
        fig("sessions_mtls_rss_per_session", "KiB", "rss_kib_per_session",
            goal="<= 64 KiB per idle session"),
        fig("sessions_mtls_hb_to_liveness_p50", "ms", "p50_ms"),
        fig("sessions_mtls_hb_to_liveness_p99", "ms", "p99_ms"),
    ]


def _main(argv: list[str]) -> None:
    _raise_nofile()
    if argv[:1] == ["serve"]:
        fn = _gateway_server if argv[1] == "gateway" else _bare_server
        asyncio.run(fn(Path(argv[2]), Path(argv[3])))
    elif argv[:1] == ["client"]:
        asyncio.run(_client(Path(argv[1]), int(argv[2])))
    else:
        for r in run():
            print(json.dumps(r))


if __name__ == "__main__":
    _main(sys.argv[1:])
