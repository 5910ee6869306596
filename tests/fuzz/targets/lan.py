"""LAN frames and hello: the bytes a device sends before and after it is admitted.

The real ``LanService._serve`` runs on the bytes (frames, hello, authorizer with the site's CRL
and allowlist, then the session messages). Property: a connection that ends without a session
has produced exactly the refusal path, an ``auth.refused`` alert with a reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from firmware.common.boards import load_board
from firmware.core import frames
from firmware.core.events import Event
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.lan.service import LanService
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.fuzz import world
from tests.provisioning.sitekit import load

MAX_LEN = 70000
DEVICE = "fz-lock"


def _hello(**kw: Any) -> dict[str, Any]:
    msg = {"type": "hello", "id": DEVICE, "transport": "ip", "kind": "lock", "maker": "Acme",
           "model": "Lock1", "fw": "1.2.0", "interval": 2.0}
    msg.update(kw)
    return msg


def seeds(workdir: Path) -> list[bytes]:
    """A device's real conversation, and variations of its hello."""
    session = (frames.encode(_hello()) + frames.encode({"type": "hb", "seq": 1,
                                                        "state": {"locked": True}})
               + frames.encode({"type": "result", "cid": "1", "ok": True, "commanded": "lock",
                                "actual": {"locked": True}, "reason": ""})
               + frames.encode({"type": "local", "action": "unlock", "state": {"locked": False}}))
    return [session, frames.encode(_hello()), frames.encode(_hello(interval=0.5, fw="2")),
            frames.encode({"type": "hello", "id": DEVICE}),
            frames.encode(_hello(ticket={"kind": "mamori-install-ticket", "payload": {},
                                         "alg": "x", "sig": ""}, secret="AAAA-BBBB"))]


def setup(workdir: Path) -> Callable[[bytes], None]:
    """The LAN service of an installed gateway, with a device certificate as the TLS peer."""
    world.quiet()
    k = world.kit(workdir)
    creds = load(k.device(DEVICE))
    der = x509.load_pem_x509_certificate(creds["certificate"].encode()).public_bytes(
        serialization.Encoding.DER)
    gw = Gateway(GatewayConfig("sim", k.state), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    authz = DeviceAuthorizer(k.state)

    async def authorizer(hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        return authz.authorize_sync(hello, der)  # the TLS handshake gave us this certificate

    lan = LanService(gw, authorizer=DeviceBinding(k.state).wrap(authorizer))
    loop = asyncio.new_event_loop()

    async def serve(data: bytes) -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        await lan._serve(reader, world.FakeWriter(), "192.0.2.7:4000")  # type: ignore[arg-type]

    def one(data: bytes) -> None:
        events.clear()
        try:
            loop.run_until_complete(serve(data))
        finally:
            for s in list(lan.sessions.values()):
                lan._end(s)
            # Each input is its own window: repeats of one source and reason are otherwise
            # folded into one later record (the aggregation is tested on its own).
            lan.refusals.flush(force=True)
        admitted = any(e.kind == "device.connected" for e in events)
        refused = [e for e in events if e.kind == "auth.refused"]
        if not admitted and len(refused) != 1:
            raise AssertionError("connection ended without a session and with %d auth.refused"
                                 % len(refused))
        for e in refused:
            if e.severity != "alert" or not e.reason:
                raise AssertionError("auth.refused without alert severity or reason")

    return one
