"""LAN benchmarks: mutual-TLS handshakes/s and framed JSON messages/s, gateway vs bare `ssl`.

Mamori: the real LanService (per-connection TLS with client certificate, CRL, authorizer,
hello/welcome, session dispatch) with contexts from an installed bundle.
Baseline, same run, same host: a bare asyncio + `ssl` server using the same certificates and
keys, TLS 1.3 only, client certificate required and verified against the same site CA, no
session tickets (no resumption), the same default curves; it answers the same hello with the
same welcome bytes, and it parses the message stream with a bare loop doing the same framing
(4-byte big-endian length prefix) and JSON parsing. What it skips is Mamori's own work: the CRL,
strict X.509 flags, the authorizer, frame validation and session bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import pick, row
from firmware.common.boards import load_board
from firmware.common.certs import load_key_pair
from firmware.core import frames
from firmware.device.credentials import load as load_credentials
from firmware.device.credentials import tls_context as client_context
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import IDENTITY, install_bundle, tls_key_passphrase
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context as mamori_server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site

HANDSHAKES = pick(150, 10)
MESSAGES = pick(3000, 200)
ROUNDS = pick(3, 1)


def _setup(root: Path) -> tuple[Path, dict[str, Any]]:
    site = Site.init(root / "site", 2, "Bench")
    site.allow("Acme", "Lock1", "ip")
    issue_gateway(site, "sim", "gw", root / "gw.bundle")
    install_bundle(root / "state", root / "gw.bundle")
    issue_device(site, "ip", "Acme", "Lock1", "dev", root / "dev.json")
    return root / "state", load_credentials(root / "dev.json")


def _bare_contexts(state: Path, creds: dict[str, Any]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Plain ssl contexts on the same keys, CA, versions and curves; mutual authentication."""
    ident = state / IDENTITY
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.minimum_version = ssl.TLSVersion.TLSv1_3
    srv.verify_mode = ssl.CERT_REQUIRED
    srv.load_verify_locations(cafile=str(ident / "ca-chain.pem"))
    passphrase = tls_key_passphrase(state)
    srv.load_cert_chain(str(ident / "gateway.pem"), str(ident / "gateway-key.pem"),
                        password=lambda: passphrase)
    srv.num_tickets = 0
    cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli.minimum_version = ssl.TLSVersion.TLSv1_3
    cli.check_hostname = False
    cli.load_verify_locations(cadata=creds["ca_chain"])
    load_key_pair(cli, creds["certificate"], creds["private_key"].encode())
    return srv, cli


class _Bare:
    """Bare server: mutual TLS, hello -> welcome, then a plain length-prefix + json.loads loop."""

    def __init__(self, welcome: bytes) -> None:
        self.welcome = welcome
        self.last: dict[str, Any] = {}
        self.target = -1
        self.done = asyncio.Event()

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        buf = b""
        hello = False
        try:
            while data := await r.read(65536):
                buf += data
                while len(buf) >= 4:
                    (n,) = struct.unpack(">I", buf[:4])
                    if len(buf) < 4 + n:
                        break
                    msg = json.loads(buf[4:4 + n])
                    buf = buf[4 + n:]
                    if not hello:
                        hello = True
                        w.write(self.welcome)
                        continue
                    self.last = msg
                    if msg.get("seq") == self.target:
                        self.done.set()
        except (ConnectionError, ssl.SSLError):
            pass
        w.close()


async def _hello(r: asyncio.StreamReader, w: asyncio.StreamWriter, hello: bytes) -> bytes:
    w.write(hello)
    got = b""
    dec = frames.FrameDecoder()
    while True:
        data = await r.read(4096)
        if not data:
            raise RuntimeError("the server closed the connection before its welcome")
        got += data
        if dec.feed(data):
            return got


async def _handshakes(port: int, ctx: ssl.SSLContext, hello: bytes) -> float:
    t0 = time.perf_counter()
    for _ in range(HANDSHAKES):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        await _hello(r, w, hello)
        w.close()
        await w.wait_closed()
    return HANDSHAKES / (time.perf_counter() - t0)


def _stream() -> bytes:
    return b"".join(frames.encode({"type": "hb", "seq": i,
                                   "state": {"seq": i, "locked": True, "pad": "x" * 200}})
                    for i in range(MESSAGES))


async def _throughput(port: int, ctx: ssl.SSLContext, hello: bytes,
                      consumed: Callable[[], Awaitable[None]]) -> float:
    """Send MESSAGES frames and wait until the server parsed the last one."""
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    await _hello(r, w, hello)
    data = _stream()
    t0 = time.perf_counter()
    for i in range(0, len(data), 32768):
        w.write(data[i:i + 32768])
        await w.drain()
    await consumed()
    rate = MESSAGES / (time.perf_counter() - t0)
    w.close()
    return rate


async def _main(root: Path) -> list[dict[str, Any]]:
    state, creds = _setup(root)
    gw = Gateway(GatewayConfig("sim", state), load_board("sim"))
    lan = LanService(gw, "127.0.0.1", 0, ssl_context=mamori_server_context(state),
                     authorizer=DeviceAuthorizer(state))
    await lan.start()
    cctx = client_context(creds)
    hello = frames.encode({"type": "hello", "id": "dev", "transport": "ip", "maker": "Acme",
                           "model": "Lock1", "fw": "1.0", "interval": 60})
    r, w = await asyncio.open_connection("127.0.0.1", lan.port, ssl=cctx)
    welcome = await _hello(r, w, hello)  # the bare server answers with these very bytes
    w.close()
    srv_ctx, bare_cli = _bare_contexts(state, creds)
    sink = _Bare(welcome)
    sink.target = MESSAGES - 1
    bare = await asyncio.start_server(sink.serve, "127.0.0.1", 0, ssl=srv_ctx)
    bare_port = bare.sockets[0].getsockname()[1]

    async def bare_consumed() -> None:
        await asyncio.wait_for(sink.done.wait(), 60)
        sink.done.clear()

    async def gateway_consumed() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sess = lan.sessions.get("dev")
            if sess is not None and sess.last_state.get("seq") == MESSAGES - 1:
                return
            await asyncio.sleep(0.001)
        raise RuntimeError("the gateway did not consume every frame")

    hs: dict[str, float] = {"ours": 0.0, "bare": 0.0}
    tp: dict[str, float] = {"ours": 0.0, "bare": 0.0}
    try:
        for _ in range(ROUNDS):  # interleaved, best of each: load from others hits both alike
            hs["bare"] = max(hs["bare"], await _handshakes(bare_port, bare_cli, hello))
            hs["ours"] = max(hs["ours"], await _handshakes(lan.port, cctx, hello))
            tp["bare"] = max(tp["bare"], await _throughput(bare_port, bare_cli, hello,
                                                           bare_consumed))
            tp["ours"] = max(tp["ours"], await _throughput(lan.port, cctx, hello,
                                                           gateway_consumed))
    finally:
        await lan.stop()
        bare.close()
    return [
        row("lan_mutual_tls_handshakes", "handshakes/s", hs["ours"],
            "bare ssl mutual TLS 1.3 handshake + hello/welcome (same certs, keys, curves)",
            hs["bare"], handshakes=HANDSHAKES, rounds=ROUNDS),
        row("lan_framed_json_messages", "msgs/s", tp["ours"],
            "bare ssl stream of the same frames, length-prefix + json.loads loop", tp["bare"],
            messages=MESSAGES, stream_bytes=len(_stream()), rounds=ROUNDS),
    ]


def run() -> list[dict[str, Any]]:
    """Run both LAN benchmarks; returns one dict per figure."""
    with tempfile.TemporaryDirectory(prefix="mamori-bench-lan-") as d:
        return asyncio.run(_main(Path(d)))


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
