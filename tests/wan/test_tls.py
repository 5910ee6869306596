"""Mutual TLS to a real Mosquitto: who may connect, and what the gateway refuses (SR3-H-4)."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

from firmware.gateway.wan.tls import client_context
from host_tools.platform.client import PlatformClient
from tests.wan.conftest import identity, platform_site, start_broker
from tests.wan.helpers import client, wait
from tests.wan.pki import World, make_ca, make_crl, make_leaf, make_world


def test_gateway_connects_with_its_certificate(world: World, broker, tmp_path: Path) -> None:
    c = client(identity(world, broker.port), tmp_path / "q.db")
    try:
        assert wait(lambda: c.connected), c.last_error
        assert c.counters["connects"] == 1
    finally:
        c.stop()
    assert "gw-1" in broker.log_tail()


def test_context_policy(world: World) -> None:
    ctx = client_context(identity(world, 8883))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(n.startswith("ECDHE-") for n in names)
    assert all("GCM" in n or "CHACHA20" in n for n in names)
    # pinned: the system trust store is not loaded, only the platform CA
    assert len(ctx.get_ca_certs()) == 1


def _refused(world: World, port: int, tmp_path: Path, host: str = "localhost",
             **over: Path) -> str:
    c = client(identity(world, port, host=host, **over), tmp_path / "refused.db")
    try:
        assert wait(lambda: c.counters["connect_attempts"] >= 2)
        assert c.counters["connects"] == 0 and not c.connected
        return c.last_error
    finally:
        c.stop()


def test_broker_from_another_ca_refused(world: World, tmp_path: Path) -> None:
    other = make_world(tmp_path / "other")
    b = start_broker(other, tmp_path / "b")
    try:
        err = _refused(world, b.port, tmp_path)
    finally:
        b.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in err or "certificate verify failed" in err


def test_wrong_hostname_refused(world: World, broker, tmp_path: Path) -> None:
    # the broker's certificate names only "localhost"
    err = _refused(world, broker.port, tmp_path, host="127.0.0.1")
    assert "mismatch" in err.lower() or "CERTIFICATE_VERIFY_FAILED" in err


def _tls_server(world: World, ctx: ssl.SSLContext) -> tuple[int, list[BaseException]]:
    ctx.load_cert_chain(str(world.broker.cert_path), str(world.broker.key_path))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    errors: list[BaseException] = []

    def serve() -> None:
        srv.settimeout(20)
        try:
            for _ in range(10):
                conn, _ = srv.accept()
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        tls.recv(1)
                except (ssl.SSLError, OSError) as exc:
                    errors.append(exc)
        except OSError:
            pass
        finally:
            srv.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(srv.getsockname()[1]), errors


def _probe(port: int, version: ssl.TLSVersion, ciphers: str) -> None:
    """A permissive client completes a handshake: the refusal below is our policy, not a bug."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers(ciphers)
    ctx.minimum_version = version
    ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.version() == {ssl.TLSVersion.TLSv1_1: "TLSv1.1",
                                 ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
        tls.sendall(b"x")


def test_tls_below_1_2_refused(world: World, tmp_path: Path) -> None:
    # OpenSSL here lets a server offer TLS 1.1 only at security level 0: a downgraded platform
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    port, server_errors = _tls_server(world, ctx)
    _probe(port, ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")  # the server really speaks 1.1
    err = _refused(world, port, tmp_path)
    assert "version" in err.lower() or "PROTOCOL" in err or "ALERT" in err, err
    assert wait(lambda: len(server_errors) >= 1)


def test_tls12_without_ecdhe_aead_refused(world: World, tmp_path: Path) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # CBC, not AEAD
    port, server_errors = _tls_server(world, ctx)
    _probe(port, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA")
    _refused(world, port, tmp_path)
    assert wait(lambda: len(server_errors) >= 1)
    assert any("cipher" in str(e).lower() for e in server_errors), server_errors


def test_broker_refuses_revoked_gateway(world: World, tmp_path: Path) -> None:
    crl = make_crl(world.root, world.ca, [world.gateway.cert])
    b = start_broker(world, tmp_path / "b", crlfile=crl)
    try:
        _refused(world, b.port, tmp_path)
        # the same broker still admits an identity that is not revoked
        p = PlatformClient(platform_site(world), b.url.replace("127.0.0.1", "localhost"))
        p.connect()
        p.close()
    finally:
        b.stop()


def test_broker_refuses_foreign_gateway(world: World, broker, tmp_path: Path) -> None:
    foreign_ca = make_ca(tmp_path, "foreign-ca")
    foreign = make_leaf(tmp_path, foreign_ca, "gw-1")
    _refused(world, broker.port, tmp_path, cert=foreign.cert_path, key=foreign.key_path)
