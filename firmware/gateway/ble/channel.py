"""BLE device channel: Noise IK over GATT writes/notifications behind a narrow transport seam.

The device (initiator) knows the gateway's static key from provisioning; its first message
carries its site-signed device record, which the gateway checks (site CA signature, the record's
key is the Noise static key just authenticated, gateway id, expiry, CRL, allowlist). Then both
sides exchange AEAD frames (ChaChaPoly, explicit counters, replay refused). The link must be
LE Secure Connections (C9); legacy pairing is refused before any byte is read.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.signeddoc import verify_doc
from firmware.core import blelink, strictjson
from firmware.core.errors import AuthError, IntegrityError, MamoriError, ProtocolError
from firmware.core.events import Event
from firmware.gateway.ble.noise import CipherState, NoiseIK

PROLOGUE = b"mamori-ble/1"
RECORD_KIND = "mamori-ble-device"
HANDSHAKE_TIMEOUT = 10.0
# the signed device record in the first handshake message (pre-authentication input)
RECORD_DEPTH = 4
MAX_RECORD = 8192


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


class BleakTransport:
    """bleak client adapter: one characteristic for writes and notifications."""

    def __init__(self, client: Any, char_uuid: str, pairing_mode: str) -> None:
        self.client = client
        self.char_uuid = char_uuid
        self.pairing_mode = pairing_mode  # from the BlueZ bond info (e.g. `btmgmt sc only`)

    async def write(self, data: bytes) -> None:
        """GATT write with response."""
        await self.client.write_gatt_char(self.char_uuid, data, response=True)

    def set_notify(self, callback: Callable[[bytes], None]) -> None:
        """Subscribe to notifications."""
        asyncio.get_running_loop().create_task(
            self.client.start_notify(self.char_uuid, lambda _c, d: callback(bytes(d))))


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


def _inbox(transport: BleTransport) -> asyncio.Queue[bytes]:
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
    inbox = _inbox(transport)
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


class GatewayBle:
    """Gateway side: accepts BLE links, authenticates devices, logs every refusal."""

    def __init__(self, state_dir: Path, emit: Callable[[Event], Any]) -> None:
        from firmware.gateway.identity.admission import DeviceAuthorizer, Revocation
        from firmware.gateway.identity.install import BLE_STATIC, IDENTITY, installed_identity
        from firmware.gateway.identity.keystore import KeyStore

        self.state_dir = Path(state_dir)
        self.meta = installed_identity(self.state_dir)
        self.static = x25519.X25519PrivateKey.from_private_bytes(
            KeyStore(self.state_dir).get(BLE_STATIC))
        self.ca = x509.load_pem_x509_certificate(
            (self.state_dir / IDENTITY / "site-ca.pem").read_bytes())
        self.revocation = Revocation(self.state_dir)
        self.policy = DeviceAuthorizer(self.state_dir)
        self.emit = emit
        self.seen_ephemerals: OrderedDict[bytes, None] = OrderedDict()
        self.refused = 0

    def _refuse(self, reason: str, principal: str = "") -> None:
        self.refused += 1
        self.emit(Event("auth.refused", "alert", "ble", principal=principal, action="connect",
                        target="ble", result="refused", reason=reason))

    def check_record(self, record: Any, static_pub: bytes) -> dict[str, Any]:
        """The device identity from its site-signed record, bound to the Noise static key."""
        try:
            p = verify_doc(self.ca, record, RECORD_KIND)
        except IntegrityError as exc:
            raise AuthError("device record refused: %s" % exc.message)
        if base64.b64decode(str(p.get("static_public", ""))) != static_pub:
            raise AuthError("device record is for another key")
        if p.get("gateway_id") != self.meta["gateway_id"]:
            raise AuthError("device is provisioned for another gateway")
        if datetime.datetime.fromisoformat(str(p["not_after"])) < datetime.datetime.now(
                datetime.UTC):
            raise AuthError("device record expired")
        self.revocation.check(int(p["serial"]))
        self.policy.check_model(str(p["maker"]), str(p["model"]), "ble")
        return {"id": p["device_id"], "maker": p["maker"], "model": p["model"],
                "transport": "ble", "serial": p["serial"], "level": self.policy.level,
                "binding": str(p.get("binding", ""))}

    async def accept(self, transport: BleTransport,
                     timeout: float = HANDSHAKE_TIMEOUT) -> BleSession | None:
        """Run the responder handshake; None (and an auth.refused event) when refused."""
        try:
            blelink.check_pairing(transport.pairing_mode)
        except AuthError as exc:
            self._refuse(str(exc))
            return None
        inbox = _inbox(transport)
        principal = ""
        try:
            seq = blelink.HandshakeSequence("responder")
            kind, _c, msg = blelink.decode(await asyncio.wait_for(inbox.get(), timeout))
            seq.expect(kind)
            e_pub = msg[:32]
            if e_pub in self.seen_ephemerals:
                raise AuthError("replayed handshake message")
            hs = NoiseIK(False, self.static, PROLOGUE)
            try:
                payload = hs.read_message_1(msg)
            except AuthError:
                raise AuthError("handshake message does not authenticate (wrong key, "
                                "reflected or tampered)")
            self.seen_ephemerals[e_pub] = None
            while len(self.seen_ephemerals) > 4096:
                self.seen_ephemerals.popitem(last=False)
            record = strictjson.loads(payload, "handshake payload", RECORD_DEPTH, MAX_RECORD)
            assert hs.rs is not None
            ident = self.check_record(record, hs.rs)
            principal = ident["id"]
            reply = json.dumps({"gateway": self.meta["gateway_id"]}).encode()
            await transport.write(blelink.encode(blelink.HS2, 0, hs.write_message_2(reply)))
            seq.sent(blelink.HS2)
        except TimeoutError:
            self._refuse("no handshake within %.0f s" % timeout)
            return None
        except MamoriError as exc:
            self._refuse(str(exc), principal)
            return None
        assert hs.send is not None and hs.recv is not None
        self.emit(Event("device.connected", "info", "ble", principal=principal,
                        action="connect", target=principal, result="admitted",
                        params={"mode": "noise-ik-chachapoly", "model": ident["model"]}))
        return BleSession(transport, inbox, hs.send, hs.recv, ident)
