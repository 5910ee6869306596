"""A bounded LAN attacker for the flood tests: unauthenticated TLS connects and slow-loris
connections from rotating loopback addresses (127.0.0.0/8 only), then it stops by itself.

    python -m tests.lan.flooder --port P [--seconds S] [--rate R] [--per-address N] [--idle N]

Prints one JSON line with what it did.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import ssl
import time
from collections.abc import Iterator


def addresses(second_octet: int) -> Iterator[str]:
    """127.<second_octet>.x.y, never the gateway's own 127.0.0.1."""
    for x in range(256):
        for y in range(1, 255):
            yield "127.%d.%d.%d" % (second_octet, x, y)


def client_context() -> ssl.SSLContext:
    """A TLS client with no certificate (it cannot authenticate) that trusts anything."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def handshake(port: int, addr: str, ctx: ssl.SSLContext, stats: dict[str, int]) -> None:
    """One unauthenticated TLS connect: handshake, a hello, read until the gateway closes."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=ctx, local_addr=(addr, 0),
                                    server_hostname="gateway"), 10)
    except (OSError, ssl.SSLError, TimeoutError):
        stats["refused"] += 1
        return
    stats["handshakes"] += 1
    try:
        writer.write(b"\x00\x00\x00\x10" + b'{"type":"hello"}')
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def loris(port: int, addr: str, until: float, stats: dict[str, int]) -> None:
    """A connection that never says anything, held until the gateway drops it or time is up."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(addr, 0)), 10)
    except (OSError, TimeoutError):
        stats["loris_refused"] += 1
        return
    stats["loris"] += 1
    try:
        left = until - time.monotonic()
        if left > 0:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(reader.read(), left)
                stats["loris_dropped"] += 1
    finally:
        writer.close()


async def main(args: argparse.Namespace) -> dict[str, int]:
    stats = {"handshakes": 0, "refused": 0, "loris": 0, "loris_refused": 0, "loris_dropped": 0}
    end = time.monotonic() + args.seconds
    tasks = []
    idle = addresses(1)
    for i in range(args.idle):
        tasks.append(asyncio.create_task(loris(args.port, next(idle), end, stats)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)
    ctx = client_context()
    flood = addresses(2)
    addr = next(flood)
    sent = 0
    start = time.monotonic()
    while time.monotonic() < end:
        if sent and sent % args.per_address == 0:
            addr = next(flood)
        tasks.append(asyncio.create_task(handshake(args.port, addr, ctx, stats)))
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / args.rate - time.monotonic()))
    await asyncio.wait(tasks, timeout=15)
    for t in tasks:
        t.cancel()
    stats["connects"] = sent
    return stats


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--per-address", type=int, default=5)
    ap.add_argument("--idle", type=int, default=900)
    print(json.dumps(asyncio.run(main(ap.parse_args()))), flush=True)
