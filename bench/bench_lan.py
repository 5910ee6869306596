"""LAN benchmarks: mutual-TLS handshakes/s and encrypted message throughput vs bare `ssl`.

Mamori: the real LanService (per-connection start_tls, client certificate, CRL, authorizer,
hello/welcome) with contexts from an installed bundle. Baseline: an asyncio `ssl` server with a
server certificate only, same host, same run.
"""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core import frames
from firmware.device.credentials import load as load_credentials
from firmware.device.credentials import tls_context as client_context
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context as mamori_server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning import pki
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from provisioning.site import Site

HANDSHAKES = 150
MESSAGES = 3000


def _setup(root: Path) -> tuple[Path, dict]:
    site = Site.init(root / "site", 2, "Bench")
    site.allow("Acme", "Lock1", "ip")
    issue_gateway(site, "sim", "gw", root / "gw.bundle")
    install_bundle(root / "state", root / "gw.bundle")
    issue_device(site, "ip", "Acme", "Lock1", "dev", root / "dev.json")
    return root / "state", load_credentials(root / "dev.json")


def _bare_contexts(root: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = pki.new_key()
    ca = pki.make_ca("bench", "bench", key)
    leaf_key = pki.new_key()
    leaf = pki.issue_leaf(key, ca, leaf_key.public_key(), "localhost", "b", "s", [], True,
                          False, ips=["127.0.0.1"])
    (root / "b.pem").write_text(pki.cert_pem(leaf))
    (root / "b.key").write_bytes(pki.key_pem(leaf_key))
    srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv.minimum_version = ssl.TLSVersion.TLSv1_3
    srv.load_cert_chain(str(root / "b.pem"), str(root / "b.key"))
    cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cli.minimum_version = ssl.TLSVersion.TLSv1_3
    cli.check_hostname = False
    cli.load_verify_locations(cadata=pki.cert_pem(ca))
    return srv, cli


class _Sink:
    """Bare server: accepts TLS, counts received bytes, signals when a target is reached."""

    def __init__(self) -> None:
        self.total = 0
        self.target = -1
        self.done = asyncio.Event()

    async def serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                self.total += len(data)
                if self.total >= self.target > 0:
                    self.done.set()
        except (ConnectionError, ssl.SSLError):
            pass
        w.close()


async def _handshakes(port: int, ctx: ssl.SSLContext, hello: bytes | None) -> float:
    t0 = time.perf_counter()
    for _ in range(HANDSHAKES):
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        if hello is not None:
            w.write(hello)
            dec = frames.FrameDecoder()
            while not dec.feed(await r.read(4096)):
                pass
        w.close()
        await w.wait_closed()
    return HANDSHAKES / (time.perf_counter() - t0)


def _stream() -> bytes:
    return b"".join(frames.encode({"type": "hb", "seq": i,
                                   "state": {"seq": i, "locked": True, "pad": "x" * 200}})
                    for i in range(MESSAGES))


async def _throughput(port: int, ctx: ssl.SSLContext, hello: bytes | None,
                      consumed: Any) -> float:
    """Send MESSAGES frames and wait until the server consumed them all."""
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
    if hello is not None:
        w.write(hello)
        dec = frames.FrameDecoder()
        while not dec.feed(await r.read(4096)):
            pass
    data = _stream()
    t0 = time.perf_counter()
    for i in range(0, len(data), 32768):
        w.write(data[i:i + 32768])
        await w.drain()
    await consumed(len(data))
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
    srv_ctx, bare_cli = _bare_contexts(root)
    sink = _Sink()
    bare = await asyncio.start_server(sink.serve, "127.0.0.1", 0, ssl=srv_ctx)
    bare_port = bare.sockets[0].getsockname()[1]

    async def bare_consumed(n: int) -> None:
        sink.target = n
        if sink.total < n:
            await asyncio.wait_for(sink.done.wait(), 60)

    async def gateway_consumed(n: int) -> None:
        for _ in range(60000):
            sess = lan.sessions.get("dev")
            if sess is not None and sess.last_state.get("seq") == MESSAGES - 1:
                return
            await asyncio.sleep(0.001)
        raise RuntimeError("the gateway did not consume every frame")

    try:
        base_hs = await _handshakes(bare_port, bare_cli, None)
        ours_hs = await _handshakes(lan.port, cctx, hello)
        base_tp = await _throughput(bare_port, bare_cli, None, bare_consumed)
        ours_tp = await _throughput(lan.port, cctx, hello, gateway_consumed)
    finally:
        await lan.stop()
        bare.close()
    return [
        {"name": "lan_mutual_tls_handshakes", "unit": "handshakes/s", "value": ours_hs,
         "baseline_name": "bare ssl TLS 1.3 handshake (server auth only)", "baseline": base_hs,
         "ratio": ours_hs / base_hs, "handshakes": HANDSHAKES},
        {"name": "lan_encrypted_messages", "unit": "msgs/s", "value": ours_tp,
         "baseline_name": "bare ssl stream of the same bytes into a sink", "baseline": base_tp,
         "ratio": ours_tp / base_tp, "messages": MESSAGES,
         "stream_bytes": len(_stream())},
    ]


def run() -> list[dict[str, Any]]:
    """Run both LAN benchmarks; returns one dict per figure."""
    with tempfile.TemporaryDirectory(prefix="mamori-bench-lan-") as d:
        return asyncio.run(_main(Path(d)))


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
