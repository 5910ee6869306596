"""The admin API over real HTTPS on loopback: Host check, logged cross-origin refusals,
request framing (Content-Length)."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.gateway.admin import server as server_mod
from firmware.gateway.admin.server import AdminServer
from firmware.gateway.admin.tlsctx import SELF_CERT, certificate_names, server_context
from tests.admin.helpers import NEW_INSTALLER, World


class Served:
    """A provisioned admin app behind a real HTTPS server on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.w = World(root)
        self.w.installer()
        self.w.events.clear()
        ctx, _ = server_context(self.w.state)
        self.server = AdminServer(("127.0.0.1", 0), self.w.app, ctx,
                                  certificate_names(self.w.state))
        self.server.start()
        self.port = self.server.port
        self.host = "127.0.0.1:%d" % self.port

    def send(self, head: str, body: bytes = b"", source: str = "127.0.0.1"
             ) -> tuple[int, dict[str, Any]]:
        """Send a raw request (head without the final blank line); (status, JSON body)."""
        ctx = ssl.create_default_context(cafile=str(self.w.state / SELF_CERT))
        with socket.create_connection(("127.0.0.1", self.port), timeout=10,
                                      source_address=(source, 0)) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n" + body)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head_raw, _, payload = data.partition(b"\r\n\r\n")
        return int(head_raw.split()[1]), json.loads(payload) if payload else {}

    def login(self, host: str, password: str = "wrong", extra: str = "",
              source: str = "127.0.0.1") -> tuple[int, Any]:
        """POST /api/login with the given Host header (and extra header lines)."""
        body = json.dumps({"account": "installer", "password": password}).encode()
        head = ("POST /api/login HTTP/1.1\nHost: %s\nContent-Type: application/json\n"
                "Content-Length: %d" % (host, len(body)))
        return self.send(head + extra, body, source)

    def events(self, kind: str) -> list[Any]:
        """Events of one kind so far."""
        return [e for e in self.w.events if e.kind == kind]


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    yield s
    s.server.shutdown()
    s.server.server_close()
    s.w.app.close()


def test_a_foreign_host_header_is_refused_and_logged(srv: Served) -> None:
    # DNS rebinding: the page's origin and Host are the attacker's name
    st, doc = srv.login("evil.example", extra="\nOrigin: https://evil.example")
    assert st == 421 and doc["error"] == "host", doc
    assert [e.result for e in srv.events("admin.host")] == ["refused"]
    assert srv.events("admin.login") == []  # no credential was checked
    st, _ = srv.login("127.0.0.1:1", extra="")  # right address, wrong port
    assert st == 421
    # the gateway's own address, and the names its certificate carries, are served
    assert srv.login(srv.host, NEW_INSTALLER)[0] == 200
    assert srv.login("LOCALHOST:%d" % srv.port, NEW_INSTALLER)[0] == 200


def test_cross_origin_refusals_are_logged_without_flooding_the_log(srv: Served) -> None:
    for extra in ("\nOrigin: https://other.example", "\nOrigin: null",
                  "\nSec-Fetch-Site: cross-site"):
        st, doc = srv.login(srv.host, extra=extra)
        assert st == 403 and doc["error"] == "csrf", doc
    for _ in range(20):
        assert srv.login(srv.host, extra="\nOrigin: null")[0] == 403
    logged = srv.events("admin.cross-origin")
    assert len(logged) == 1 and logged[0].severity == "warning", logged
    srv.w.clock.advance(61)
    assert srv.login(srv.host, extra="\nOrigin: null")[0] == 403
    logged = srv.events("admin.cross-origin")
    assert len(logged) == 2 and logged[1].params["suppressed"] == 22, logged


@pytest.mark.parametrize("framing", ["Content-Length: 2\nContent-Length: 40",
                                     "Content-Length: 40\nContent-Length: 40",
                                     "Content-Length: 2, 40",
                                     "Content-Length: +40",
                                     "Content-Length: 40\nTransfer-Encoding: chunked"])
def test_ambiguous_body_framing_is_refused(srv: Served, framing: str) -> None:
    body = json.dumps({"account": "installer", "password": "wrong"}).encode().ljust(40)
    head = ("POST /api/login HTTP/1.1\nHost: %s\nContent-Type: application/json\n%s"
            % (srv.host, framing))
    st, doc = srv.send(head, body)
    assert st in (400, 411) and doc["error"] in ("bad-length", "length-required"), doc
    assert srv.events("admin.login") == []


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-read timeouts far longer than any test: only the limits under test end a connection."""
    monkeypatch.setattr(server_mod, "TIMEOUT_S", 3600.0)
    monkeypatch.setattr(server_mod._Handler, "timeout", 3600.0)


def _hold(port: int, source: str) -> socket.socket:
    """A TCP connection that never starts its TLS handshake."""
    return socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))


def _refused(port: int, source: str) -> bool:
    """Whether the server closes a new connection from SOURCE instead of serving it."""
    ctx = ssl.create_default_context()
    with _hold(port, source) as raw:
        try:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1").close()
        except ssl.SSLCertVerificationError:
            return False  # it answered the handshake
        except (ssl.SSLError, OSError):
            return True
    return False


def test_concurrent_connections_are_capped_per_source_and_in_total(srv: Served,
                                                                   patient: None) -> None:
    srv.server.max_per_source, srv.server.max_total = 3, 4
    held = [_hold(srv.port, "127.0.0.1") for _ in range(3)]
    try:
        assert _refused(srv.port, "127.0.0.1")  # a fourth from the same address
        held.append(_hold(srv.port, "127.0.0.2"))
        assert _refused(srv.port, "127.0.0.3")  # a fifth in total
        logged = srv.events("admin.connections")
        assert len(logged) == 1 and logged[0].result == "refused", logged
    finally:
        for h in held:
            h.close()
    # once they are gone, new connections are served again
    deadline = time.monotonic() + 30
    while srv.server.connections() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.login(srv.host, source="127.0.0.3")[0] == 401


def test_a_request_not_received_within_the_deadline_is_cut(srv: Served, patient: None) -> None:
    srv.server.deadline_s = 0.5
    ctx = ssl.create_default_context(cafile=str(srv.w.state / SELF_CERT))
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(b"GET /api/status HTTP/1.1\r\nHost: " + srv.host.encode() + b"\r\n")
        try:
            assert s.recv(1024) == b""  # closed by the server, not by the client's timeout
        except ConnectionResetError:
            pass
    logged = srv.events("admin.slow-request")
    assert len(logged) == 1 and logged[0].result == "refused", logged
