"""HTTP(S) and local-file transport for TUF metadata and ranged bundle chunks."""

from __future__ import annotations

import http.client
import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

import urllib3
from tuf.api import exceptions as tuf_exc
from tuf.ngclient.fetcher import FetcherInterface

from firmware.core.errors import IntegrityError, ProtocolError

BLOCK = 64 * 1024


class Fetcher(FetcherInterface):
    """Fetches http://, https:// (optionally pinned CA file) and file:// URLs."""

    def __init__(self, ca_file: str | None = None, timeout: float = 30.0) -> None:
        ctx = ssl.create_default_context(cafile=ca_file)
        self._ctx = ctx
        self._timeout = timeout
        self._pool = urllib3.PoolManager(ssl_context=ctx, retries=False,
                                         timeout=urllib3.Timeout(connect=timeout, read=timeout))

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            if not path.is_file():
                raise tuf_exc.DownloadHTTPError("not found: " + str(path), 404)
            return self._file_chunks(path)
        try:
            resp = self._pool.request("GET", url, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise tuf_exc.DownloadError("cannot reach %s: %s" % (url, exc)) from exc
        if resp.status != 200:
            resp.release_conn()
            raise tuf_exc.DownloadHTTPError("HTTP %d for %s" % (resp.status, url), resp.status)
        return self._http_chunks(resp)

    @staticmethod
    def _file_chunks(path: Path) -> Iterator[bytes]:
        with open(path, "rb") as f:
            while True:
                block = f.read(BLOCK)
                if not block:
                    return
                yield block

    @staticmethod
    def _http_chunks(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
        try:
            yield from resp.stream(BLOCK)
        except urllib3.exceptions.HTTPError as exc:
            raise tuf_exc.DownloadError("transfer interrupted: %s" % exc) from exc
        finally:
            resp.release_conn()

    def open_range(self, url: str, start: int, end: int) -> RangeBody:
        """One streaming body for bytes [start, end) of url (a single request, resumable)."""
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise ProtocolError("cannot read offline bundle: %s" % exc.strerror, str(path))
            os.lseek(fd, start, os.SEEK_SET)
            return RangeBody(lambda buf: os.readv(fd, [buf]), end - start, lambda: os.close(fd))
        # identity: the signed hashes cover the bytes on the wire, never a decoder's output
        headers = {"Range": "bytes=%d-%d" % (start, end - 1), "Accept-Encoding": "identity"}
        parts = urlparse(url)
        conn: http.client.HTTPConnection
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port,
                                               timeout=self._timeout, context=self._ctx)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                              timeout=self._timeout)
        try:
            conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""),
                         headers=headers)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ProtocolError("cannot reach the update server: %s" % exc,
                                "the download resumes from the last verified chunk")
        if resp.status not in (200, 206):
            conn.close()
            raise ProtocolError("update server answered HTTP %d for %s" % (resp.status, url))
        allowed = end - start if resp.status == 206 else end
        if resp.length is not None and resp.length > allowed:
            conn.close()
            raise IntegrityError("the server sent more than the signed bundle length "
                                 "(%d > %d bytes)" % (resp.length, allowed),
                                 "endless-data protection: nothing written")

        def readinto(buf: memoryview) -> int:
            # http.client reads straight into the caller's buffer: no copy besides the kernel's
            n = resp.readinto(buf)
            if not n and buf and resp.length:
                raise ProtocolError("transfer interrupted: the server closed the connection "
                                    "%d bytes early" % resp.length,
                                    "the download resumes from the last verified chunk")
            return n

        body = RangeBody(readinto, end - start, conn.close)
        if resp.status == 200:  # the server ignored Range: skip to start, still capped
            body.skip(start)
        return body


class RangeBody:
    """A response body read into caller buffers; refuses bytes past the signed length."""

    def __init__(self, readinto: Callable[[memoryview], int], length: int,
                 close: Callable[[], object]) -> None:
        self._readinto = readinto
        self.left = length
        self._close = close

    def __enter__(self) -> RangeBody:
        return self

    def __exit__(self, *exc: object) -> None:
        self._close()

    def _read(self, buf: memoryview) -> int:
        try:
            return self._readinto(buf)
        except (urllib3.exceptions.HTTPError, http.client.HTTPException) as exc:
            raise ProtocolError("transfer interrupted: %s" % exc,
                                "the download resumes from the last verified chunk")
        except OSError as exc:
            raise ProtocolError("transfer interrupted: %s" % (exc.strerror or exc),
                                "the download resumes from the last verified chunk")

    def skip(self, n: int) -> None:
        """Discard n bytes (a server that ignored Range sends the file from its start)."""
        scratch = memoryview(bytearray(min(n, 1 << 20) or 1))
        while n > 0:
            got = self._read(scratch[:min(n, len(scratch))])
            if not got:
                return
            n -= got

    def fill(self, buf: memoryview) -> int:
        """Read until buf is full or the body ends; the number of bytes read."""
        if len(buf) > self.left:
            raise ValueError("read past the requested range")
        got = 0
        while got < len(buf):
            n = self._read(buf[got:])
            if not n:
                break
            got += n
        self.left -= got
        return got

    def expect_end(self) -> None:
        """Raise if the server sends more than the signed length (endless-data protection)."""
        if self._read(memoryview(bytearray(1))):
            raise IntegrityError("the server sent more than the signed bundle length",
                                 "endless-data protection: nothing written")
