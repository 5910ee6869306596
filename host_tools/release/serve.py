"""A small HTTP(S) server for a release repository: serves metadata/ and targets/ (never keys/),
with byte-range support so gateways resume downloads. Used by `mamori release serve` and tests.
"""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

PUBLIC = ("metadata", "targets")


class RepoHandler(http.server.BaseHTTPRequestHandler):
    """GET /metadata/... and /targets/... from the repository; Range: bytes=a-b honoured."""

    server: RepoServer
    _raw = False
    disable_nagle_algorithm = True  # headers and body go out as separate small writes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def do_GET(self) -> None:  # noqa: N802
        path = unquote(urlparse(self.path).path)
        parts = [p for p in path.split("/") if p]
        self._raw = path in self.server.raw_paths
        override = self.server.overrides.get(path)
        if override is not None:
            data = override() if callable(override) else override
            self._send(data)
            return
        if not parts or parts[0] not in PUBLIC or any(p in ("..", ".") for p in parts):
            self.send_error(404)
            return
        f = self.server.root.joinpath(*parts)
        if not f.is_file():
            self.send_error(404)
            return
        self._send(f.read_bytes() if f.stat().st_size < 1 << 20 else f)

    def _send(self, data: bytes | Path) -> None:
        size = len(data) if isinstance(data, bytes) else data.stat().st_size
        start, end, status = 0, size - 1, 200
        rng = "" if self._raw else self.headers.get("Range", "")
        if rng.startswith("bytes=") and "-" in rng and size:
            a, _, b = rng[6:].partition("-")
            try:
                start = int(a)
                end = min(int(b), size - 1) if b else size - 1
                status = 206
            except ValueError:
                start, end = 0, size - 1
        if start > end and size:
            self.send_error(416)
            return
        self.send_response(status)
        self.send_header("Content-Length", str(max(0, end - start + 1)))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if isinstance(data, bytes):
            self.wfile.write(data[start:end + 1])
            return
        with open(data, "rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                self.wfile.write(block)
                left -= len(block)


class RepoServer(http.server.ThreadingHTTPServer):
    """Threaded server over one repository directory; `overrides` maps URL paths to bytes."""

    daemon_threads = True

    def __init__(self, root: Path, port: int = 0, host: str = "127.0.0.1",
                 tls_cert: str | None = None, tls_key: str | None = None) -> None:
        super().__init__((host, port), RepoHandler)
        self.root = root
        self.overrides: dict[str, Any] = {}
        self.raw_paths: set[str] = set()  # tests: answer these paths ignoring Range
        self.scheme = "http"
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(tls_cert, tls_key)
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"

    @property
    def url(self) -> str:
        """Base URL gateways use as --from."""
        host, port = self.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        return "%s://%s:%d" % (self.scheme, "localhost" if self.scheme == "https" else name, port)

    def start(self) -> threading.Thread:
        """Serve in a daemon thread."""
        t = threading.Thread(target=self.serve_forever, daemon=True)
        t.start()
        return t
