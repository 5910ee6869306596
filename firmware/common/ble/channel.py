"""BLE device channel, both ends: Noise IK over GATT writes/notifications behind a transport seam.

The device (initiator) knows the gateway's static key from provisioning; its first message
carries its site-signed device record, which the gateway checks (site CA signature, the record's
key is the Noise static key just authenticated, gateway id, expiry, CRL, allowlist). Then both
sides exchange AEAD frames (ChaChaPoly, explicit counters, replay refused). The link must be
LE Secure Connections (C9); legacy pairing is refused before any byte is read.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.ble.noise import CipherState, NoiseIK
from firmware.core import blelink, strictjson
from firmware.core.errors import AuthError, ProtocolError

PROLOGUE = b"mamori-ble/1"
RECORD_KIND = "mamori-ble-device"
HANDSHAKE_TIMEOUT = 10.0


class BleTransport(Protocol):
    """What the channel needs from a GATT link: one characteristic, write + notify."""

    pairing_mode: str

    async def write(self, data: bytes) -> None:
        """Send one GATT write (or notification, on the peripheral side)."""
        ...

    def set_notify(self, callback: Callable[[bytes], None]) -> None:
        """Deliver every incoming GATT value to callback."""
        ...


class LoopbackTransport:
    """In-process transport: two ends wired back to back (tests, simulated devices)."""

    def __init__(self, pairing_mode: str = blelink.SECURE_PAIRING) -> None:
        self.pairing_mode = pairing_mode
        self.peer: LoopbackTransport | None = None
        self._cb: Callable[[bytes], None] | None = None
        self._pending: list[bytes] = []
        self.sent: list[bytes] = []

    @classmethod
    def pair(cls, pairing_mode: str = blelink.SECURE_PAIRING) -> tuple[LoopbackTransport,
                                                                      LoopbackTransport]:
        """Two connected ends (device end, gateway end)."""
        a, b = cls(pairing_mode), cls(pairing_mode)
        a.peer, b.peer = b, a
        return a, b

    async def write(self, data: bytes) -> None:
        """Deliver to the peer's callback on the next loop turn."""
        self.sent.append(data)
        peer = self.peer
        if peer is None:
            return
        if peer._cb is None:
            peer._pending.append(bytes(data))  # held like a radio buffer until subscribed
        else:
            asyncio.get_running_loop().call_soon(peer._cb, bytes(data))

    def set_notify(self, callback: Callable[[bytes], None]) -> None:
        """Register the receive callback (delivers anything already buffered)."""
        self._cb = callback
        for data in self._pending:
            asyncio.get_running_loop().call_soon(callback, data)
        self._pending = []


class BleSession:
    """An established, mutually authenticated AEAD channel."""

    def __init__(self, transport: BleTransport, inbox: asyncio.Queue[bytes], send: CipherState,
                 recv: CipherState, peer: dict[str, Any]) -> None:
        self.transport = transport
        self.inbox = inbox
        self.send_cs = send
        self.recv_cs = recv
        self.peer = peer
        self.guard = blelink.ReplayGuard()
        self.mode = "noise-ik-chachapoly"

    async def send(self, data: bytes) -> None:
        """Encrypt and send one message."""
        counter = self.send_cs.n
        ct = self.send_cs.encrypt_with_ad(b"", data)
        await self.transport.write(blelink.encode(blelink.DATA, counter, ct))

    async def recv(self, timeout: float = 5.0) -> bytes:
        """Receive one message (ProtocolError on replay/reorder, AuthError on forgery)."""
        raw = await asyncio.wait_for(self.inbox.get(), timeout)
        kind, counter, ct = blelink.decode(raw)
        if kind != blelink.DATA:
            raise ProtocolError("handshake frame after the handshake finished")
        self.recv_cs.n = counter  # the nonce is the explicit counter
        pt = self.recv_cs.decrypt_with_ad(b"", ct)
        self.guard.check(counter)  # only an authentic frame moves the window
        return pt


def open_inbox(transport: BleTransport) -> asyncio.Queue[bytes]:
    """Subscribe to the transport; incoming GATT values queue up (bounded, like a radio buffer)."""
    q: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    def put(d: bytes) -> None:
        if not q.full():
            q.put_nowait(d)

    transport.set_notify(put)
    return q


async def device_connect(creds: dict, transport: BleTransport,
                         timeout: float = HANDSHAKE_TIMEOUT) -> BleSession:
    """Device side: authenticate to the gateway named in the BLE credentials."""
    blelink.check_pairing(transport.pairing_mode)
    inbox = open_inbox(transport)
    static = x25519.X25519PrivateKey.from_private_bytes(base64.b64decode(creds["static_private"]))
    hs = NoiseIK(True, static, PROLOGUE, base64.b64decode(creds["gateway_static_public"]))
    seq = blelink.HandshakeSequence("initiator")
    payload = json.dumps(creds["record"], sort_keys=True).encode()
    await transport.write(blelink.encode(blelink.HS1, 0, hs.write_message_1(payload)))
    seq.sent(blelink.HS1)
    kind, _c, msg = blelink.decode(await asyncio.wait_for(inbox.get(), timeout))
    seq.expect(kind)
    reply = strictjson.loads_object(hs.read_message_2(msg) or b"{}", "handshake reply", 2, 4096)
    if reply.get("gateway") != creds["gateway_id"]:
        raise AuthError("the BLE peer is not gateway %s" % creds["gateway_id"])
    assert hs.send is not None and hs.recv is not None
    return BleSession(transport, inbox, hs.send, hs.recv, {"gateway": reply["gateway"]})


