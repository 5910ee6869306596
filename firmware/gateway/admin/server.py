"""The HTTPS transport of the admin API (standard library http.server + ssl, one thread each)."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.web import MAX_BODY, Request, Response, error

log = logging.getLogger("mamori.admin")
TIMEOUT_S = 10.0


class _Handler(BaseHTTPRequestHandler):
    server: AdminServer
    server_version = "mamori-admin"
    sys_version = ""
    timeout = TIMEOUT_S

    def setup(self) -> None:
        conn = self.request
        conn.settimeout(TIMEOUT_S)
        conn.do_handshake()  # in this connection's thread: a slow client stalls nobody else
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Requests are audited as Events by the app; no access log with paths here."""

    def _write(self, resp: Response) -> None:
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        for c in resp.cookies:
            self.send_header("Set-Cookie", c)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", "") != "HEAD" and resp.body:
            self.wfile.write(resp.body)

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Protocol-level errors (malformed request line, oversized headers) with headers."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        self._write(error(code, "http", phrase))

    def _serve(self) -> None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._write(error(411, "length-required", "chunked bodies are not accepted"))
            return
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if len(lengths) != 1 or not lengths[0].strip().isdigit() or not lengths[0].isascii():
            # Two framings of one body (request smuggling shape): refuse, never pick one.
            self.close_connection = True
            self._write(error(400, "bad-length", "one Content-Length of decimal digits only"))
            return
        length = int(lengths[0])
        if length > MAX_BODY:
            self.close_connection = True
            self._write(error(413, "too-large", "request body is too large"))
            return
        body = self.rfile.read(length) if length else b""
        self.server.received(self.request)
        headers = {k: v for k, v in self.headers.items()}
        req = Request(self.command, self.path, headers, body, self.client_address[0])
        self._write(self.server.app.handle(req))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve


def host_values(names: Iterable[str], port: int) -> frozenset[str]:
    """Host header values (lower case) naming one of NAMES on PORT (bare on 443)."""
    out: set[str] = set()
    for name in names:
        host = ("[%s]" % name if ":" in name else name).lower()
        out.add("%s:%d" % (host, port))
        if port == 443:
            out.add(host)
    return frozenset(out)


class AdminServer(ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in each connection's thread."""

    daemon_threads = True
    request_queue_size = 16
    max_per_source = 8  # a browser opens up to 6 at once
    max_total = 48
    deadline_s = 30.0  # handshake, request line, headers and body of one request

    def __init__(self, address: tuple[str, int], app: AdminApp, ctx: ssl.SSLContext,
                 names: Iterable[str] = ()) -> None:
        """Bind ADDRESS; the app then answers only to Host values naming this address and
        port or one of NAMES (the certificate's names) with this port."""
        self.app = app
        self.ctx = ctx
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._conns: dict[Any, tuple[str, float]] = {}  # open connection: (source, deadline)
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)
        app.hosts = host_values([address[0], *names], self.port)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Admit a connection while its source and the server are under their caps."""
        source = str(client_address[0])
        with self._conns_lock:
            mine = sum(1 for s, _ in self._conns.values() if s == source)
            full = len(self._conns) >= self.max_total
            if mine < self.max_per_source and not full:
                self._conns[request] = (source, time.monotonic() + self.deadline_s)
                return True
        self.app.refused("admin.connections", "too many open connections (%s)"
                         % ("in total" if full else "from one address"), source,
                         "alert" if full else "warning")
        return False

    def received(self, request: Any) -> None:
        """The request is read: the deadline no longer applies to its connection."""
        with self._conns_lock:
            if request in self._conns:
                self._conns[request] = (self._conns[request][0], math.inf)

    def connections(self) -> int:
        """Connections open now."""
        with self._conns_lock:
            return len(self._conns)

    def shutdown_request(self, request: Any) -> None:
        """Forget a connection as it closes."""
        with self._conns_lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Cut connections whose request is not in within the deadline (a drip of bytes
        renews each read's timeout, not this one)."""
        now = time.monotonic()
        with self._conns_lock:
            late = [(r, s) for r, (s, d) in self._conns.items() if d <= now]
            for r, s in late:
                self._conns[r] = (s, math.inf)
        for r, s in late:
            self.app.refused("admin.slow-request", "request not complete within %d s"
                             % self.deadline_s, s)
            with contextlib.suppress(OSError):
                # The plain socket's shutdown: SSLSocket.shutdown would drop its TLS state
                # under the handler thread still reading from it.
                socket.socket.shutdown(r, socket.SHUT_RDWR)

    def get_request(self) -> tuple[Any, Any]:
        """Accept and wrap without handshaking (the handler thread does it)."""
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A broken connection (handshake failure, reset) is not an application error."""
        log.debug("admin connection from %s ended with an error", client_address[0],
                  exc_info=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self.server_address[1])

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        t = threading.Thread(target=self.serve_forever, name="mamori-admin", daemon=True)
        t.start()
        return t
