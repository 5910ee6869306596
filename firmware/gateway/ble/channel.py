"""BLE, gateway side: accepts Noise IK links, checks the device's site-signed record, alerts.

The shared channel (transport seam, sessions, the device's initiator) lives in
``firmware.common.ble.channel`` so the device agent stands alone; it is re-exported here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import x25519

from firmware.common.ble.channel import (
    HANDSHAKE_TIMEOUT,
    PROLOGUE,
    RECORD_KIND,
    BleSession,
    BleTransport,
    LoopbackTransport,
    device_connect,
    open_inbox,
)
from firmware.common.ble.noise import NoiseIK
from firmware.common.signeddoc import verify_doc
from firmware.core import blelink, strictjson
from firmware.core.errors import AuthError, IntegrityError, MamoriError
from firmware.core.events import Event

# the signed device record in the first handshake message (pre-authentication input)
RECORD_DEPTH = 4
MAX_RECORD = 8192

__all__ = ["HANDSHAKE_TIMEOUT", "PROLOGUE", "RECORD_KIND", "BleSession", "BleTransport",
           "GatewayBle", "LoopbackTransport", "device_connect"]


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

    def _refuse(self, reason: str, principal: str = "", peer: str = "ble") -> None:
        # target is the radio address when the backend knows it: the monitor's rogue source
        self.refused += 1
        self.emit(Event("auth.refused", "alert", "ble", principal=principal, action="connect",
                        target=peer, result="refused", reason=reason))

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
        peer = str(getattr(transport, "peer", "ble"))
        try:
            blelink.check_pairing(transport.pairing_mode)
        except AuthError as exc:
            self._refuse(str(exc), peer=peer)
            return None
        inbox = open_inbox(transport)
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
            self._refuse("no handshake within %.0f s" % timeout, peer=peer)
            return None
        except MamoriError as exc:
            self._refuse(str(exc), principal, peer)
            return None
        assert hs.send is not None and hs.recv is not None
        self.emit(Event("device.connected", "info", "ble", principal=principal,
                        action="connect", target=principal, result="admitted",
                        params={"mode": "noise-ik-chachapoly", "model": ident["model"]}))
        return BleSession(transport, inbox, hs.send, hs.recv, ident)
