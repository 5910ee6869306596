"""BLE: Noise IK handshake end to end through the transport seam, both sides in-process."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from noise.connection import Keypair, NoiseConnection

from firmware.core import blelink
from firmware.core.errors import AuthError, MamoriError, ProtocolError
from firmware.core.events import Event
from firmware.gateway.ble.channel import (
    PROLOGUE,
    RECORD_KIND,
    BleSession,
    GatewayBle,
    LoopbackTransport,
    device_connect,
)
from firmware.gateway.ble.noise import NoiseIK, public_bytes
from firmware.gateway.identity.admission import install_crl
from provisioning import pki
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("ble"))


def run(coro: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro())  # type: ignore[arg-type]


async def handshake(kit: Kit, creds: dict, mode: str = blelink.SECURE_PAIRING
                    ) -> tuple[BleSession | None, BaseException | BleSession, list[Event]]:
    events: list[Event] = []
    gw = GatewayBle(kit.state, events.append)
    dev_t, gw_t = LoopbackTransport.pair(mode)
    acc = asyncio.create_task(gw.accept(gw_t, timeout=2))
    try:
        dev: BaseException | BleSession = await device_connect(creds, dev_t, timeout=0.5)
    except (MamoriError, TimeoutError) as exc:
        dev = exc
    return await acc, dev, events


def test_handshake_end_to_end_and_encrypted_exchange(kit: Kit) -> None:
    creds = load(kit.device("ble-1", transport="ble"))

    async def main() -> None:
        gws, devs, events = await handshake(kit, creds)
        assert isinstance(gws, BleSession) and isinstance(devs, BleSession)
        assert gws.peer["id"] == "ble-1" and devs.peer["gateway"] == "gw1"
        await devs.send(b'{"type":"hb","seq":1}')
        assert await gws.recv() == b'{"type":"hb","seq":1}'
        await gws.send(b"lock")
        assert await devs.recv() == b"lock"
        # ciphertext on the air never contains the plaintext
        assert all(b'"type":"hb"' not in f  # a 2-byte needle can occur in random bytes
                   for f in devs.transport.sent)  # type: ignore[attr-defined]
        assert [e.kind for e in events] == ["device.connected"]

    run(main)


def test_legacy_pairing_refused(kit: Kit) -> None:
    creds = load(kit.device("ble-legacy", transport="ble"))

    async def main() -> None:
        events: list[Event] = []
        gw = GatewayBle(kit.state, events.append)
        _dev_t, gw_t = LoopbackTransport.pair("legacy")
        assert await gw.accept(gw_t) is None
        assert "LE Secure Connections" in events[0].reason and events[0].severity == "alert"
        with pytest.raises(AuthError):
            await device_connect(creds, LoopbackTransport("legacy"))

    run(main)


def refused(events: list[Event]) -> Event:
    ev = [e for e in events if e.kind == "auth.refused"]
    assert len(ev) == 1 and ev[0].source == "ble" and ev[0].severity == "alert"
    return ev[0]


def test_wrong_gateway_key_refused(kit: Kit) -> None:
    creds = load(kit.device("ble-wrongkey", transport="ble"))
    other = x25519.X25519PrivateKey.generate()
    creds["gateway_static_public"] = base64.b64encode(public_bytes(other)).decode()

    async def main() -> None:
        gws, dev, events = await handshake(kit, creds)
        assert gws is None and isinstance(dev, BaseException)
        assert "authenticate" in refused(events).reason

    run(main)


def test_record_for_another_key_refused(kit: Kit) -> None:
    a = load(kit.device("ble-a", transport="ble"))
    b = load(kit.device("ble-b", transport="ble"))
    a["record"] = b["record"]  # a presents b's record with its own key

    async def main() -> None:
        gws, _dev, events = await handshake(kit, a)
        assert gws is None and "another key" in refused(events).reason

    run(main)


def test_not_allowlisted_and_revoked_refused(kit: Kit) -> None:
    c = load(kit.device("ble-forged", transport="ble"))
    p = dict(c["record"]["payload"], maker="Cheap", model="Tag")
    c["record"] = pki.sign_doc(kit.site.ca_key(), RECORD_KIND, p)
    r = load(kit.device("ble-lost", transport="ble"))
    kit.site.revoke("ble-lost")
    install_crl(kit.state, kit.site.crl_pem().encode())

    async def main() -> None:
        gws, _d, events = await handshake(kit, c)
        assert gws is None and "allowlist" in refused(events).reason
        gws, _d, events = await handshake(kit, r)
        assert gws is None and "revoked" in refused(events).reason

    run(main)


def test_replayed_and_reflected_handshake_refused(kit: Kit) -> None:
    creds = load(kit.device("ble-replay", transport="ble"))

    async def main() -> None:
        gws, devs, _ = await handshake(kit, creds)
        assert isinstance(devs, BleSession)
        hs1, = [f for f in devs.transport.sent  # type: ignore[attr-defined]
                if f[0] == blelink.HS1]
        hs2, = [f for f in gws.transport.sent  # type: ignore[union-attr]
                if f[0] == blelink.HS2]
        events: list[Event] = []
        gw = GatewayBle(kit.state, events.append)
        gw.seen_ephemerals = GatewayBle(kit.state, lambda e: None).seen_ephemerals
        for frame in (hs2, hs1[:blelink.HEADER] + bytes(32) + hs1[blelink.HEADER + 32:]):
            atk, gw_t = LoopbackTransport.pair()
            acc = asyncio.create_task(gw.accept(gw_t, timeout=1))
            await asyncio.sleep(0)
            await atk.write(frame)
            assert await acc is None
        # a replay of the genuine message 1 to the gateway that saw it
        events2: list[Event] = []
        gw2 = GatewayBle(kit.state, events2.append)
        for i in range(2):
            atk, gw_t = LoopbackTransport.pair()
            acc = asyncio.create_task(gw2.accept(gw_t, timeout=1))
            await asyncio.sleep(0)
            await atk.write(hs1)
            res = await acc
            assert (res is not None) if i == 0 else (res is None)
        assert "replayed" in refused(events2).reason
        reasons = [e.reason for e in events if e.kind == "auth.refused"]
        assert len(reasons) == 2 and "expected handshake message 1" in reasons[0]

    run(main)


def test_malformed_oversized_and_tampered_frames(kit: Kit) -> None:
    creds = load(kit.device("ble-junk", transport="ble"))

    async def main() -> None:
        events: list[Event] = []
        gw = GatewayBle(kit.state, events.append)
        for junk in (b"\x01\x00", b"\x01" + bytes(10) + b"\x05\x00" * 400,
                     blelink.encode(blelink.HS1, 0, b"short")):
            atk, gw_t = LoopbackTransport.pair()
            acc = asyncio.create_task(gw.accept(gw_t, timeout=1))
            await asyncio.sleep(0)
            await atk.write(junk)
            assert await acc is None
        assert len([e for e in events if e.kind == "auth.refused"]) == 3
        gws, devs, _ = await handshake(kit, creds)
        assert isinstance(devs, BleSession) and gws is not None
        await devs.send(b"one")
        frame = devs.transport.sent[-1]  # type: ignore[attr-defined]
        assert await gws.recv() == b"one"
        await devs.transport.write(frame)  # replay of a data frame
        with pytest.raises(ProtocolError):
            await gws.recv()
        counter = devs.send_cs.n
        bad = bytearray(devs.send_cs.encrypt_with_ad(b"", b"two"))
        bad[-1] ^= 1
        await devs.transport.write(blelink.encode(blelink.DATA, counter, bytes(bad)))
        with pytest.raises(AuthError):
            await gws.recv()

    run(main)


def test_interoperates_with_noiseprotocol_library() -> None:
    i_s, r_s = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    from cryptography.hazmat.primitives import serialization as ser

    def raw(k: x25519.X25519PrivateKey) -> bytes:
        return k.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())

    lib = NoiseConnection.from_name(b"Noise_IK_25519_ChaChaPoly_SHA256")
    lib.set_as_responder()
    lib.set_prologue(PROLOGUE)
    lib.set_keypair_from_private_bytes(Keypair.STATIC, raw(r_s))
    lib.start_handshake()
    ours = NoiseIK(True, i_s, PROLOGUE, public_bytes(r_s))
    assert lib.read_message(ours.write_message_1(b"hello")) == b"hello"
    assert ours.read_message_2(lib.write_message(b"world")) == b"world"
    assert ours.handshake_hash == lib.get_handshake_hash()
    assert lib.decrypt(ours.send.encrypt_with_ad(b"", b"x")) == b"x"  # type: ignore[union-attr]
    assert ours.recv.decrypt_with_ad(b"", lib.encrypt(b"y")) == b"y"  # type: ignore[union-attr]
    # and the other way round: library initiator, our responder
    lib2 = NoiseConnection.from_name(b"Noise_IK_25519_ChaChaPoly_SHA256")
    lib2.set_as_initiator()
    lib2.set_prologue(PROLOGUE)
    lib2.set_keypair_from_private_bytes(Keypair.STATIC, raw(i_s))
    lib2.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, public_bytes(r_s))
    lib2.start_handshake()
    resp = NoiseIK(False, r_s, PROLOGUE)
    assert resp.read_message_1(lib2.write_message(b"a")) == b"a"
    assert resp.rs == public_bytes(i_s)
    assert lib2.read_message(resp.write_message_2(b"b")) == b"b"
