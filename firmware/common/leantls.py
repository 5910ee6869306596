"""TLS on asyncio streams without a 256 KiB receive buffer per connection (CPython).

asyncio's ``SSLProtocol`` gives every connection its own 256 KiB ``bytearray`` for socket reads,
touched at once: a gateway with 1,000 idle device sessions held ~250 MiB for buffers that are
only ever used for the instant between ``recv_into`` and the copy into the TLS object's input
BIO. ``LeanSSLProtocol`` uses one buffer per thread for that instant instead, and reads
plaintext 16 KiB at a time. ``start_tls`` upgrades an accepted or opened stream like
``StreamWriter.start_tls`` does, with the lean protocol; the TLS itself is the ``ssl`` module's.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from asyncio import sslproto
from typing import Any

BUFFER = 64 * 1024  # one per thread: the socket read size
PLAINTEXT_READ = 16 * 1024  # the TLS record size

_local = threading.local()


def _view() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(BUFFER))
    return view


class LeanSSLProtocol(sslproto.SSLProtocol):
    """asyncio's SSLProtocol reading through a per-thread buffer (see module docstring)."""

    max_size = PLAINTEXT_READ

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ssl_buffer: Any = None  # the thread's buffer is used instead
        self._ssl_buffer_view: Any = None

    def get_buffer(self, n: int) -> memoryview:
        """The thread's read buffer (filled by the transport, copied out at once)."""
        return _view()

    def buffer_updated(self, nbytes: int) -> None:
        """Hand what the transport read to the TLS object, then let go of the buffer."""
        self._ssl_buffer_view = _view()
        try:
            super().buffer_updated(nbytes)
        finally:
            self._ssl_buffer_view = None


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext, *,
                    server_side: bool, server_hostname: str | None = None,
                    handshake_timeout: float | None = None) -> None:
    """Upgrade a plain stream to TLS in place (the handshake included), like
    ``StreamWriter.start_tls``; raises what the handshake raises and closes on failure."""
    loop = asyncio.get_running_loop()
    transport: Any = writer.transport
    protocol: Any = getattr(writer, "_protocol", None)
    if protocol is None or not hasattr(protocol, "_replace_writer") or \
            not getattr(transport, "_start_tls_compatible", False):
        await writer.start_tls(context, server_hostname=server_hostname,
                               ssl_handshake_timeout=handshake_timeout)
        return
    await writer.drain()
    waiter = loop.create_future()
    tls = LeanSSLProtocol(loop, protocol, context, waiter, server_side,
                          server_hostname if not server_side else None,
                          call_connection_made=False, ssl_handshake_timeout=handshake_timeout)
    # As asyncio's own start_tls: pause so no data reaches the TLS protocol before it is made.
    transport.pause_reading()
    transport.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException:
        transport.close()
        made.cancel()
        resumed.cancel()
        raise
    writer._transport = tls._app_transport  # type: ignore[attr-defined]
    protocol._replace_writer(writer)


async def open_tls_connection(host: str, port: int, context: ssl.SSLContext,
                              server_hostname: str | None = None,
                              handshake_timeout: float | None = None,
                              local_addr: tuple[str, int] | None = None,
                              ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """``asyncio.open_connection(ssl=...)`` with the lean TLS protocol."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
    try:
        await start_tls(writer, context, server_side=False,
                        server_hostname=server_hostname or host,
                        handshake_timeout=handshake_timeout)
    except BaseException:
        writer.close()
        raise
    return reader, writer
