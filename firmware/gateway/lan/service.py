"""LAN device channel: framed sessions with devices over TCP (+ mutual TLS) (CPython, asyncio).

Protocol (``firmware/core/frames.py`` frames):
device → ``hello`` {id, transport, maker, model, fw, interval}; gateway → ``welcome`` {gateway};
then the session messages of ``devicesession.py`` (``hb``, ``cmd``/``result``, ``local``).
Authentication is done by the ``authorizer`` hook (peer certificate + hello → identity); a
refusal is an ``auth.refused`` alert with the reason, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.core import frames
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, MamoriError, ProtocolError, StateError
from firmware.core.events import Event
from firmware.gateway.devices.session import DeviceSession, DeviceSessionService
from firmware.gateway.lan.tls import tls_failure_reason
from firmware.gateway.runtime.endpoint import remember
from firmware.gateway.runtime.gateway import Gateway

# authorizer(hello, peer_cert_der or None) -> identity dict with at least id, transport.
Authorizer = Callable[[dict[str, Any], bytes | None], Awaitable[dict[str, Any]]]

HELLO_TIMEOUT = 5.0
READ_CHUNK = 4096


class Session(DeviceSession):
    """One authenticated device connection."""

    def __init__(self, identity: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        super().__init__(identity)
        self.writer = writer

    async def send(self, msg: dict[str, Any]) -> None:
        """Queue one frame to the device."""
        self.writer.write(frames.encode(msg))

    def close(self) -> None:
        """Close the connection."""
        self.writer.close()


class LanService(DeviceSessionService[Session]):
    """Accepts device sessions, tracks heartbeats, executes commands on devices."""

    name = "lan"

    def __init__(self, gw: Gateway, host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None,
                 authorizer: Authorizer | None = None,
                 max_sessions: int = 1024, max_frame: int = frames.DEFAULT_MAX_FRAME,
                 stable: bool = False) -> None:
        super().__init__(gw)
        self.host = host
        self.port = port
        # stable: remember the endpoint (runtime/endpoint.py) so devices find it after a restart
        self.stable = stable
        self.ssl_context = ssl_context
        self.authorizer = authorizer
        self.max_sessions = max_sessions
        self.max_frame = max_frame
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        # admission(peer_ip) -> refusal reason for a blocked peer (set by the monitor service)
        self.admission: Callable[[str], str | None] | None = None
        self.blocked = 0

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one)."""
        if self.authorizer is None:
            raise StateError("the LAN service has no authorizer",
                             "install a bundle (mutual TLS) or run the sim board")
        # TLS is started per connection in _on_connect so a failed handshake is a logged refusal.
        try:
            self._server = await asyncio.start_server(self._on_connect, self.host, self.port)
        except OSError as exc:
            if not (self.stable and exc.errno == errno.EADDRINUSE and self.port
                    and self.gw.board.get("name") == "sim"):
                raise StateError("cannot listen for devices on %s:%d: %s"
                                 % (self.host, self.port, exc.strerror or exc),
                                 "stop the program using that port, or pass --lan-port")
            # The sim board shares the developer's PC: another program took the port.
            self.gw.emit(Event("lan.endpoint_changed", "alert", "lan", action="listen",
                               target="%s:%d" % (self.host, self.port), result="moved",
                               reason="port %d is taken by another program: devices set up "
                                      "for it must be told the new port" % self.port))
            self._server = await asyncio.start_server(self._on_connect, self.host, 0)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        if self.stable:
            remember(self.gw.state_dir, self.host, self.port)

    async def stop(self) -> None:
        """Close every session and stop listening."""
        if self._server:
            self._server.close()
        for s in list(self.sessions.values()):
            s.close()
        await self._cancel_tasks()
        if self._server:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def status(self) -> dict[str, Any]:
        """Endpoint and session counts."""
        return {"host": self.host, "port": self.port, "tls": self.ssl_context is not None,
                "sessions": len(self.sessions), "refused": self.refused}

    # -- sessions ------------------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = self._track()
        peer = writer.get_extra_info("peername")
        peer_s = "%s:%s" % (peer[0], peer[1]) if peer else "?"
        try:
            # A blocked peer is dropped before any TLS or hello work; the monitor counts it.
            if self.admission is not None and peer and self.admission(str(peer[0])):
                self.blocked += 1
                return
            if self.ssl_context is not None:
                try:
                    # Awaited directly (no wait_for task) so reading pauses before the
                    # ClientHello can reach the plain stream.
                    await writer.start_tls(self.ssl_context, ssl_handshake_timeout=HELLO_TIMEOUT)
                except (ssl.SSLError, OSError, TimeoutError) as exc:
                    self._refuse(peer_s, tls_failure_reason(exc))
                    return
            await self._serve(reader, writer, peer_s)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # one bad peer never takes the service down
            self.gw.emit(Event("lan.error", "warning", "lan", target=peer_s,
                               result="closed", reason=repr(exc)))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            if task is not None:
                self._tasks.discard(task)

    def _refuse(self, peer: str, reason: str, principal: str = "",
                evidence: dict[str, Any] | None = None) -> None:
        self.refused += 1
        self.gw.emit(Event("auth.refused", "alert", "lan", principal=principal,
                           action="connect", target=peer, result="refused", reason=reason,
                           params=evidence or {}))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str) -> None:
        dec = frames.FrameDecoder(self.max_frame)
        try:
            hello = await asyncio.wait_for(self._read_one(reader, dec), HELLO_TIMEOUT)
        except TimeoutError:
            self._refuse(peer, "no hello within %.0f s" % HELLO_TIMEOUT)
            return
        except ProtocolError as exc:
            self._refuse(peer, "malformed hello: " + str(exc))
            return
        if hello is None:
            self._refuse(peer, "connection closed before hello")
            return
        if hello.get("type") != "hello" or not isinstance(hello.get("id"), str):
            self._refuse(peer, "first message is not a hello with a device id",
                         evidence={"type": str(hello.get("type"))[:40]})
            return
        if len(self.sessions) >= self.max_sessions:
            self._refuse(peer, "session limit reached", principal=hello["id"][:64])
            writer.write(frames.encode(rc.refusal_message(rc.BUSY)))
            return
        ssl_obj = writer.get_extra_info("ssl_object")
        cert = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
        assert self.authorizer is not None
        try:
            identity = await self.authorizer(hello, cert)
        except MamoriError as exc:
            self._refuse(peer, str(exc), principal=hello["id"][:64],
                         evidence={"code": rc.code_of(exc)})
            writer.write(frames.encode(rc.refusal_message(rc.code_of(exc))))
            return
        session = Session(identity, writer)
        await self._admit(session, hello, peer)
        try:
            await self._session_loop(reader, dec, session)
        finally:
            self._end(session)

    async def _admit(self, session: Session, hello: dict[str, Any], peer: str) -> None:
        ident = session.identity
        tls = self.ssl_context is not None
        await self._register(
            session, float(ident.get("interval") or hello.get("interval") or 10.0),
            ident.get("transport", "ip"),
            {"maker": ident.get("maker", ""), "model": ident.get("model", ""),
             "fw": str(hello.get("fw", ""))[:32], "peer": peer, "encrypted": tls,
             "authenticated": True},
            connected={"peer": peer, "model": ident.get("model", ""), "tls": tls})

    async def _read_one(self, reader: asyncio.StreamReader,
                        dec: frames.FrameDecoder) -> dict[str, Any] | None:
        while True:
            data = await reader.read(READ_CHUNK)
            if not data:
                return None
            msgs = dec.feed(data)
            if msgs:
                if len(msgs) > 1:
                    raise ProtocolError("device sent data before the gateway's welcome")
                return dict(msgs[0])

    async def _session_loop(self, reader: asyncio.StreamReader, dec: frames.FrameDecoder,
                            session: Session) -> None:
        idle = self._idle_timeout(session)
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), idle)
            except TimeoutError:
                return
            if not data:
                return
            try:
                msgs = dec.feed(data)
            except ProtocolError as exc:
                self.gw.emit(Event("lan.protocol", "warning", "lan",
                                   principal=session.device_id, target=session.device_id,
                                   result="closed", reason=str(exc)))
                return
            for msg in msgs:
                self._dispatch(session, msg)

    def _unknown_message(self, session: Session, reason: str) -> None:
        raise ProtocolError(reason)  # ends the LAN session (a lan.error event)


def registry_authorizer(gw: Gateway, expected: dict[str, dict[str, Any]]) -> Authorizer:
    """Sim-only authorizer: admits devices declared in `expected` (no TLS, loopback only)."""

    async def authorize(hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        ident = expected.get(hello["id"])
        if ident is None:
            raise AuthError("device %r is not registered" % hello["id"][:64])
        return dict(ident, id=hello["id"])

    return authorize
