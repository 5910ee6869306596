"""BLE: what a radio peer sends before it is authenticated (Noise IK over GATT).

Even first byte: the input is the raw first GATT write of a new link (framing, handshake
sequence, Noise message 1). Odd first byte: the input is the *payload* of a well-formed Noise
message 1 from a device key (the signed device record), so the gateway decrypts it and parses
it strictly, verifies the record's signature, key binding, gateway, expiry, CRL and allowlist.
Property: every link that is not admitted produced exactly one ``auth.refused`` alert.
The messages inside an established channel are the LAN's (hello, hb, cmd, result): see lan.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.ble.noise import NoiseIK
from firmware.core import blelink
from firmware.core.events import Event
from firmware.gateway.ble.channel import PROLOGUE, GatewayBle, LoopbackTransport
from tests.fuzz import world
from tests.provisioning.sitekit import load

MAX_LEN = 1000


def _creds(workdir: Path) -> dict:
    k = world.kit(workdir)
    path = k.root / "fz-ble.json"
    if not path.exists():
        k.device("fz-ble", "ble")
    return load(path)


def seeds(workdir: Path) -> list[bytes]:
    """The device's real record as a payload, and a real first handshake frame."""
    creds = _creds(workdir)
    payload = json.dumps(creds["record"], sort_keys=True).encode()
    hs = NoiseIK(True, x25519.X25519PrivateKey.from_private_bytes(
        base64.b64decode(creds["static_private"])), PROLOGUE,
        base64.b64decode(creds["gateway_static_public"]))
    frame = blelink.encode(blelink.HS1, 0, hs.write_message_1(payload))
    return [b"\x01" + payload, b"\x00" + frame, b"\x01{}", b"\x00" + frame[:11]]


def setup(workdir: Path) -> Callable[[bytes], None]:
    """The gateway's BLE acceptor (installed identity, CRL, allowlist) and a device key."""
    world.quiet()
    creds = _creds(workdir)
    static = x25519.X25519PrivateKey.from_private_bytes(
        base64.b64decode(creds["static_private"]))
    gw_pub = base64.b64decode(creds["gateway_static_public"])
    events: list[Event] = []
    gw = GatewayBle(world.kit(workdir).state, events.append)
    loop = asyncio.new_event_loop()

    async def attempt(frame: bytes) -> object:
        dev_t, gw_t = LoopbackTransport.pair()
        await dev_t.write(frame)
        return await gw.accept(gw_t, timeout=1.0)

    def one(data: bytes) -> None:
        if not data:
            return
        if data[0] % 2:
            hs = NoiseIK(True, static, PROLOGUE, gw_pub)
            msg = hs.write_message_1(data[1:])
            if len(msg) > blelink.MAX_PAYLOAD:
                return
            frame = blelink.encode(blelink.HS1, 0, msg)
        else:
            frame = data[1:]
        events.clear()
        session = loop.run_until_complete(attempt(frame))
        refused = [e for e in events if e.kind == "auth.refused"]
        if session is None and (len(refused) != 1 or refused[0].severity != "alert"
                                or not refused[0].reason):
            raise AssertionError("link not admitted, with %d auth.refused" % len(refused))
    return one
