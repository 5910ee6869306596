"""HTTP(S) and local-file transport for TUF metadata and ranged bundle chunks."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
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

    def fetch_range(self, url: str, start: int, size: int) -> bytes:
        """Bytes [start, start+size) of url; reads at most size+1 bytes (endless-data cap)."""
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    return f.read(size)
            except OSError as exc:
                raise ProtocolError("cannot read offline bundle: %s" % exc.strerror, str(path))
        headers = {"Range": "bytes=%d-%d" % (start, start + size - 1)}
        try:
            resp = self._pool.request("GET", url, headers=headers, preload_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise ProtocolError("cannot reach the update server: %s" % exc,
                                "the download resumes from the last verified chunk")
        try:
            if resp.status == 200:
                skip = start  # server ignored Range: skip to the chunk, still capped
            elif resp.status == 206:
                skip = 0
            else:
                raise ProtocolError("update server answered HTTP %d for %s" % (resp.status, url))
            out = bytearray()
            for block in resp.stream(BLOCK):
                if skip:
                    cut = min(skip, len(block))
                    block = block[cut:]
                    skip -= cut
                out += block
                if len(out) > size:
                    raise IntegrityError("the server sent more than the signed chunk length",
                                         "endless-data protection: nothing written")
            return bytes(out)
        except urllib3.exceptions.HTTPError as exc:
            raise ProtocolError("transfer interrupted: %s" % exc,
                                "the download resumes from the last verified chunk")
        finally:
            resp.release_conn()
