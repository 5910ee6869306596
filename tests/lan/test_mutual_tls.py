"""Mutual TLS on the LAN with real sockets on loopback: admitted, and every refusal logged."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import AuthError, MamoriError, StateError
from firmware.core.events import Event
from firmware.device.credentials import gateway_pin, three_star_guard
from firmware.device.credentials import tls_context as client_context
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from firmware.gateway.identity.admission import DeviceAuthorizer, install_crl
from firmware.gateway.lan.service import LanService
from firmware.gateway.lan.tls import server_context
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from provisioning import pki
from tests.provisioning.sitekit import Kit, load, mismatched_key


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("lan"))


@pytest.fixture(scope="module")
def other(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("other"), name="Elsewhere")


Scenario = Callable[[LanService, list[Event]], Awaitable[None]]


def run_gateway(kit: Kit, scenario: Scenario, ctx: ssl.SSLContext | None = None) -> list[Event]:
    """Start a LanService with mutual TLS on loopback, run the scenario, return the events."""
    events: list[Event] = []

    async def main() -> None:
        board = load_board("sim")
        gw = Gateway(GatewayConfig("sim", kit.state), board)
        gw.bus.subscribe(events.append)
        lan = LanService(gw, "127.0.0.1", 0, ssl_context=ctx or server_context(kit.state),
                         authorizer=DeviceAuthorizer(kit.state))
        await lan.start()
        try:
            await scenario(lan, events)
        finally:
            await lan.stop()

    asyncio.run(main())
    return events


async def connect(lan: LanService, creds: dict, heartbeats: int = 1) -> DeviceAgent:
    agent = DeviceAgent(creds["device_id"], kind="lock", interval=0.2,
                        maker=creds.get("maker", ""), model=creds.get("model", ""),
                        transport="ip")
    await run_session(agent, "127.0.0.1", lan.port, client_context(creds),
                      heartbeats=heartbeats)
    return agent


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def refusals(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "auth.refused"]


async def refused_then_healthy(lan: LanService, events: list[Event], creds: dict,
                               good: dict) -> Event:
    """The device is refused with a logged reason; then a good device still gets in."""
    with pytest.raises(MamoriError):
        await connect(lan, creds)
    await wait_for(lambda: len(refusals(events)) >= 1)
    assert creds["device_id"] not in lan.sessions
    agent = await connect(lan, good)
    assert agent.gateway == "gateway" or agent.gateway
    ev = refusals(events)[0]
    assert ev.severity == "alert" and ev.source == "lan" and ev.reason
    return ev


def test_valid_device_connects_and_executes_commands(kit: Kit) -> None:
    creds = load(kit.device("lock-ok"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        agent = DeviceAgent("lock-ok", kind="lock", interval=0.2, maker="Acme",
                            model="Lock1", transport="ip", guard=three_star_guard(creds, "gw1"))
        stop = asyncio.Event()
        task = asyncio.create_task(run_session(agent, "127.0.0.1", lan.port,
                                               client_context(creds), stop=stop,
                                               pin=gateway_pin(creds)))
        await wait_for(lambda: "lock-ok" in lan.sessions)
        res = await lan.execute("lock-ok", "unlock", envelope=kit.signed("lock-ok", "unlock"))
        assert res["ok"] is True and res["actual"] == {"locked": False}
        res = await lan.execute("lock-ok", "fly")
        assert res["ok"] is False
        assert lan.sessions["lock-ok"].identity["model"] == "Lock1"
        stop.set()
        await task

    events = run_gateway(kit, scenario)
    assert not refusals(events)
    assert any(e.kind == "device.connected" and e.principal == "lock-ok" for e in events)


def test_no_client_certificate_refused(kit: Kit) -> None:
    good = load(kit.device("good-nocert"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cadata=good["ca_chain"])
        agent = DeviceAgent("nocert", kind="lock", transport="ip")
        with pytest.raises(MamoriError):
            await run_session(agent, "127.0.0.1", lan.port, ctx, heartbeats=1)
        await wait_for(lambda: bool(refusals(events)))
        assert "nocert" not in lan.sessions
        await connect(lan, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "CERTIFICATE" in ev.reason.upper()


def test_certificate_from_another_site_refused(kit: Kit, other: Kit) -> None:
    foreign = load(other.device("foreign-1"))
    foreign["ca_chain"] = kit.site.ca_pem() + kit.site.root_pem()  # trusts our gateway
    good = load(kit.device("good-foreign"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await refused_then_healthy(lan, events, foreign, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "issuer" in ev.reason


def test_expired_certificate_refused(kit: Kit) -> None:
    expired = kit.forged_ip_creds("old-1", not_after=pki.now() - datetime.timedelta(days=1))
    good = load(kit.device("good-expired"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await refused_then_healthy(lan, events, expired, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "expired" in ev.reason


def raw_client_context(creds: dict, tmp: Path) -> ssl.SSLContext:
    """A client context loaded straight from PEM files (no key validation by cryptography)."""
    (tmp / "c.pem").write_text(creds["certificate"])
    (tmp / "k.pem").write_text(creds["private_key"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=creds["ca_chain"])
    ctx.load_cert_chain(str(tmp / "c.pem"), str(tmp / "k.pem"))
    return ctx


def test_wrong_key_for_certificate_refused(kit: Kit, tmp_path: Path) -> None:
    thief = mismatched_key(load(kit.device("victim-1")))
    ctx = raw_client_context(thief, tmp_path)  # the cert's public point, another private key
    good = load(kit.device("good-wrongkey"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        agent = DeviceAgent("victim-1", kind="lock", transport="ip")
        with pytest.raises(MamoriError):
            await run_session(agent, "127.0.0.1", lan.port, ctx, heartbeats=1)
        await wait_for(lambda: bool(refusals(events)))
        assert "victim-1" not in lan.sessions
        await connect(lan, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "TLS handshake failed" in ev.reason


def test_model_not_allowlisted_refused(kit: Kit) -> None:
    rogue = kit.forged_ip_creds("rogue-cam", maker="Cheap", model="Cam9")
    good = load(kit.device("good-model"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await refused_then_healthy(lan, events, rogue, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "not on the level-2 allowlist" in ev.reason and ev.principal == "rogue-cam"


def test_hello_claiming_another_identity_refused(kit: Kit) -> None:
    creds = load(kit.device("liar-1"))
    good = load(kit.device("good-liar"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        agent = DeviceAgent("lock-ok", kind="lock", transport="ip")  # not the cert's id
        with pytest.raises(MamoriError):
            await run_session(agent, "127.0.0.1", lan.port, client_context(creds),
                              heartbeats=1)
        await wait_for(lambda: bool(refusals(events)))
        await connect(lan, good)

    ev = refusals(run_gateway(kit, scenario))[0]
    assert "does not match the certificate" in ev.reason


def test_revoked_certificate_refused_by_live_crl_and_by_new_context(kit: Kit) -> None:
    creds = load(kit.device("lost-1"))
    good = load(kit.device("good-revoked"))
    ctx = server_context(kit.state)  # built before the revocation: the CRL file is re-read
    kit.site.revoke("lost-1", "device lost")
    install_crl(kit.state, kit.site.crl_pem().encode())

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await refused_then_healthy(lan, events, creds, good)

    ev = refusals(run_gateway(kit, scenario, ctx=ctx))[0]
    assert "revoked" in ev.reason
    ev = refusals(run_gateway(kit, lambda lan, ev: refused_then_healthy(lan, ev, creds, good)))[0]
    assert "revoked" in ev.reason


def test_crl_rollback_and_foreign_crl_refused(kit: Kit, other: Kit) -> None:
    old = kit.site.crl_pem().encode()
    kit.site.write_crl()
    install_crl(kit.state, kit.site.crl_pem().encode())
    with pytest.raises(MamoriError):
        install_crl(kit.state, other.site.crl_pem().encode())
    # an older CRL (issued earlier) must not replace a newer one
    from cryptography import x509
    if x509.load_pem_x509_crl(old).last_update_utc < x509.load_pem_x509_crl(
            kit.site.crl_pem().encode()).last_update_utc:
        with pytest.raises(MamoriError):
            install_crl(kit.state, old)


class Recorder:
    """A loopback TCP relay that records both directions of one session."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.up = b""
        self.down = b""
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _relay(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        tr, tw = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            while data := await src.read(65536):
                if up:
                    self.up += data
                else:
                    self.down += data
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pump(r, tw, True), pump(tr, w, False), return_exceptions=True)


async def raw_exchange(port: int, data: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(data)
    await w.drain()
    got = b""
    try:
        while chunk := await asyncio.wait_for(r.read(65536), 5):
            got += chunk
    except (TimeoutError, ConnectionError):
        pass
    w.close()
    return got


def test_replayed_and_reflected_handshake_refused(kit: Kit) -> None:
    good = load(kit.device("good-replay"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        rec = Recorder(lan.port)
        await rec.start()
        agent = DeviceAgent("good-replay", kind="lock", interval=0.2, maker="Acme",
                            model="Lock1", transport="ip")
        await run_session(agent, "127.0.0.1", rec.port, client_context(good), heartbeats=1)
        await wait_for(lambda: bool(rec.down) and "good-replay" not in lan.sessions)
        assert rec.up and rec.down
        before = len(refusals(events))
        await raw_exchange(lan.port, rec.up)  # replay the device's whole side
        await wait_for(lambda: len(refusals(events)) == before + 1)
        await raw_exchange(lan.port, rec.down)  # reflect the gateway's own flight
        await wait_for(lambda: len(refusals(events)) == before + 2)
        assert not lan.sessions
        await connect(lan, good)
        assert any(e.kind == "device.connected" for e in events)

    events = run_gateway(kit, scenario)
    assert len(refusals(events)) == 2
    assert all(e.reason.startswith("TLS handshake failed") for e in refusals(events))


@pytest.mark.parametrize("junk", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                       # not TLS at all
    b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\xff",                 # truncated/garbled hello
    b"\x16\x03\x01\xff\xff" + b"\x00" * 70000,                   # oversized record
])
def test_malformed_or_oversized_handshake_refused(kit: Kit, junk: bytes) -> None:
    good = load(kit.device("good-junk-%d" % len(junk)))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        await raw_exchange(lan.port, junk)
        await wait_for(lambda: bool(refusals(events)))
        await connect(lan, good)

    events = run_gateway(kit, scenario)
    assert len(refusals(events)) == 1 and refusals(events)[0].reason


def test_one_context_reused_and_tls13_only(kit: Kit) -> None:
    ctx = server_context(kit.state)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    good = load(kit.device("good-ctx"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        assert lan.ssl_context is ctx
        for _ in range(3):
            await connect(lan, good)
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises((MamoriError, ssl.SSLError, ConnectionError)):
            await run_session(DeviceAgent("x", transport="ip"), "127.0.0.1", lan.port, old,
                              heartbeats=1)
        await wait_for(lambda: bool(refusals(events)))

    events = run_gateway(kit, scenario, ctx=ctx)
    assert "PROTOCOL" in refusals(events)[0].reason.upper()


def test_authorizer_refuses_missing_certificate_directly(kit: Kit) -> None:
    authz = DeviceAuthorizer(kit.state)
    with pytest.raises(AuthError):
        authz.authorize_sync({"id": "x"}, None)
    with pytest.raises(AuthError):
        authz.authorize_sync({"id": "x"}, b"\x30\x03garbage")


def test_gateway_without_installed_identity_has_no_tls(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        server_context(tmp_path)

