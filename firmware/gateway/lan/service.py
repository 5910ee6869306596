"""LAN device channel: framed sessions with devices over TCP (+ mutual TLS) (CPython, asyncio).

Protocol (``firmware/core/frames.py`` frames):
device → ``hello`` {id, transport, maker, model, fw, interval}; gateway → ``welcome`` {gateway};
then the session messages of ``devicesession.py`` (``hb``, ``cmd``/``result``, ``local``).
Authentication is done by the ``authorizer`` hook (peer certificate + hello → identity); a
refusal closes the connection and becomes an ``auth.refused`` alert with the reason, aggregated
per source and reason (``refusals.py``) and handed to the monitor one by one (``observer``).

The TLS floor is per model (``firmware.core.lanpolicy``): the server context accepts TLS 1.2
only while an allowlisted model declares a constrained stack, and a device whose certificate
names a model that must use TLS 1.3 but negotiated 1.2 is refused after the handshake, like any
other failed admission (code ``tls-policy``).

Before any TLS work a connection passes the blocked-source check and the pre-authentication
limits (``preauth.py``: per source, in total with the oldest evicted, one deadline for handshake
and hello, a handshake rate). TLS uses ``firmware.common.leantls`` (no 256 KiB buffer per
session).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ssl
import struct
import termios
from collections.abc import Awaitable, Callable
from typing import Any

from firmware.common.leantls import start_tls
from firmware.core import frames, lanpolicy
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, MamoriError, ProtocolError, StateError
from firmware.core.events import Event
from firmware.core.hello import parse_hello
from firmware.core.ids import valid_id
from firmware.gateway.devices.session import DeviceSession, DeviceSessionService
from firmware.gateway.lan.preauth import EVICTED, PreAuthGuard, Ticket
from firmware.gateway.lan.refusals import RefusalAggregator
from firmware.gateway.lan.tls import tls_failure_reason
from firmware.gateway.runtime.endpoint import remember
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.runtime.memory import Trimmer

# authorizer(hello, peer_cert_der or None) -> identity dict with at least id, transport.
Authorizer = Callable[[dict[str, Any], bytes | None], Awaitable[dict[str, Any]]]

HELLO_TIMEOUT = 5.0
READ_CHUNK = 4096
BACKLOG = 1024
# observer(address, reason, principal, evidence): every refusal, for the rogue pipeline
Observer = Callable[[str, str, str, dict[str, Any]], None]


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
        # observer: every refusal as it happens (set by the monitor service)
        self.observer: Observer | None = None
        self.blocked = 0
        self.preauth = PreAuthGuard()
        self.refusals = RefusalAggregator(gw.emit, "lan")
        self.trimmer = Trimmer()
        self._ticker: asyncio.Task[None] | None = None
        self._entries: list[dict[str, Any]] | None = None

    async def start(self) -> None:
        """Listen on host:port (port 0 picks a free one)."""
        if self.authorizer is None:
            raise StateError("the LAN service has no authorizer",
                             "install a bundle (mutual TLS) or run the sim board")
        # TLS is started per connection in _on_connect so a failed handshake is a logged refusal.
        try:
            self._server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                      backlog=BACKLOG)
        except OSError as exc:
            if not (self.stable and exc.errno == errno.EADDRINUSE and self.port
                    and self.gw.board.is_sim):
                raise StateError("cannot listen for devices on %s:%d: %s"
                                 % (self.host, self.port, exc.strerror or exc),
                                 "stop the program using that port, or pass --lan-port")
            # The sim board shares the developer's PC: another program took the port.
            self.gw.emit(Event("lan.endpoint_changed", "alert", "lan", action="listen",
                               target="%s:%d" % (self.host, self.port), result="moved",
                               reason="port %d is taken by another program: devices set up "
                                      "for it must be told the new port" % self.port))
            self._server = await asyncio.start_server(self._on_connect, self.host, 0,
                                                      backlog=BACKLOG)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        if self.stable:
            remember(self.gw.state_dir, self.host, self.port)
        self._ticker = self.gw.spawn("lan.refusals", self._tick)

    async def stop(self) -> None:
        """Close every session and stop listening."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server:
            self._server.close()
        for s in list(self.sessions.values()):
            s.close()
        await self._cancel_tasks()
        self.refusals.flush(force=True)
        self.limiter.flush(force=True)
        if self._server:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _tick(self) -> None:
        # Closes refusal windows; gives memory back to the system after a burst of connections.
        while True:
            await asyncio.sleep(1.0)
            self.refusals.flush()
            self.limiter.flush()
            self.trimmer.maybe_trim(quiet=len(self.preauth._pending) == 0)

    def status(self) -> dict[str, Any]:
        """Endpoint, session counts, pre-authentication limits and refusals."""
        return {"host": self.host, "port": self.port, "tls": self.ssl_context is not None,
                "tls_policy": self.tls_policy(),
                "sessions": len(self.sessions), "refused": self.refused,
                "blocked": self.blocked, "preauth": self.preauth.status(),
                "refusals": self.refusals.status(), "memory": self.trimmer.status()}

    def tls_policy(self) -> dict[str, Any] | None:
        """The LAN's TLS floor and the allowlisted models that may use TLS 1.2 (None: no TLS)."""
        if self.ssl_context is None:
            return None
        entries = self._allowlist()
        low = self.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2
        return {"min_version": lanpolicy.TLS12 if low else lanpolicy.TLS13,
                "allowlist_floor": lanpolicy.server_floor(entries),
                "tls12_models": lanpolicy.constrained_models(entries),
                "tls12_suites": lanpolicy.TLS12_SUITES if low else None,
                "default": lanpolicy.TLS13}

    def _allowlist(self) -> list[dict[str, Any]]:
        """The installed allowlist's entries (the authorizer's, else read once)."""
        found = getattr(self.authorizer, "allowlist", None)
        if found is None:
            if self._entries is None:
                from firmware.gateway.identity.admission import DeviceAuthorizer

                try:
                    self._entries = list(DeviceAuthorizer(self.gw.state_dir).allowlist)
                except (MamoriError, OSError, ValueError):
                    self._entries = []  # admission refuses every device then, and says why
            found = self._entries
        return list(found)

    # -- sessions ------------------------------------------------------------------------
    async def _on_connect(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = self._track()
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if peer else "?"
        peer_s = "%s:%s" % (peer[0], peer[1]) if peer else "?"
        ticket: Ticket | None = None
        self.trimmer.opened()
        if self.ssl_context is not None:
            # Until TLS starts, the ClientHello stays in the kernel: read into the plain stream
            # while the connection waits for its handshake turn, it would be lost to the TLS
            # layer (the handshake then times out), and the silent-first eviction could not
            # see that the peer spoke. start_tls resumes reading.
            transport: Any = writer.transport  # a socket transport: it reads, too
            transport.pause_reading()
        try:
            # The fast path: a blocked or over-limit peer is dropped before any TLS or hello work.
            if self.admission is not None and peer and self.admission(address):
                self.blocked += 1
                writer.transport.abort()
                return
            got = self.preauth.admit(address, task.cancel if task is not None else _nothing,
                                     _bytes_waiting(writer))
            if isinstance(got, str):
                # A resource limit, not a failed authentication: counted, never a block reason.
                writer.transport.abort()
                self._refuse(peer_s, got, address=address, offence=False)
                return
            ticket = got
            if self.ssl_context is not None:
                if not await self.preauth.turn(ticket):
                    self._refuse(peer_s, "TLS handshake timed out", address=address)
                    return
                ticket.spoke()  # latched before the TLS layer takes the ClientHello away
                try:
                    await start_tls(writer, self.ssl_context, server_side=True,
                                    handshake_timeout=max(0.1, self.preauth.left(ticket)))
                except (ssl.SSLError, OSError, TimeoutError) as exc:
                    self._refuse(peer_s, tls_failure_reason(exc), address=address)
                    return
            await self._serve(reader, writer, peer_s, ticket)
        except asyncio.CancelledError:
            if ticket is not None and ticket.evicted:
                self._refuse(peer_s, EVICTED, address=address, offence=False)
        except Exception as exc:  # one bad peer never takes the service down
            self.gw.emit(Event("lan.error", "warning", "lan", target=peer_s,
                               result="closed", reason=repr(exc)))
        finally:
            if ticket is not None:
                self.preauth.release(ticket)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            if task is not None:
                self._tasks.discard(task)
            self.trimmer.closed()

    def _refuse(self, peer: str, reason: str, principal: str = "",
                evidence: dict[str, Any] | None = None, address: str = "",
                offence: bool = True) -> None:
        self.refused += 1
        address = address or peer.rsplit(":", 1)[0]
        if self.observer is not None and offence:
            self.observer(address, reason, principal, dict(evidence or {}, peer=peer))
        self.refusals.refuse(address, peer, reason, principal, evidence)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str, ticket: Ticket | None = None) -> None:
        dec = frames.FrameDecoder(self.max_frame)
        wait = self.preauth.left(ticket) if ticket is not None else HELLO_TIMEOUT
        try:
            hello = await asyncio.wait_for(self._read_one(reader, dec), wait)
        except TimeoutError:
            self.preauth.timed_out()
            self._refuse(peer, "no hello within the %.0f s pre-authentication deadline"
                         % self.preauth.deadline)
            return
        except ProtocolError as exc:
            self._refuse(peer, "malformed hello: " + str(exc))
            return
        except OSError as exc:  # reset or TLS failure mid-hello: still no session, still refused
            self._refuse(peer, "connection lost before hello (%s)" % exc.__class__.__name__)
            return
        if hello is None:
            self._refuse(peer, "connection closed before hello")
            return
        if hello.get("type") != "hello":
            self._refuse(peer, "first message is not a hello with a device id",
                         evidence={"type": str(hello.get("type"))[:40]})
            return
        try:
            hello = parse_hello(hello)
        except ProtocolError as exc:
            self._refuse(peer, "malformed hello: " + str(exc),
                         principal=hello["id"] if valid_id(hello.get("id")) else "")
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
        negotiated = ssl_obj.version() if ssl_obj is not None else None
        too_old = None
        if ssl_obj is not None:
            too_old = lanpolicy.refusal(
                str(identity.get("tls_floor") or lanpolicy.TLS13), negotiated,
                "%s/%s" % (identity.get("maker", ""), identity.get("model", "")))
        if too_old is not None:
            self._refuse(peer, too_old, principal=hello["id"][:64],
                         evidence={"code": rc.TLS_POLICY, "tls": str(negotiated)})
            writer.write(frames.encode(rc.refusal_message(rc.TLS_POLICY)))
            return
        if negotiated:
            identity["tls"] = negotiated
        if ticket is not None:
            self.preauth.release(ticket, authenticated=True)  # no longer pre-authentication
        session = Session(identity, writer)
        try:
            await self._admit(session, hello, peer)
            await self._session_loop(reader, dec, session)
        except (MamoriError, OSError, ValueError) as exc:  # named: the device is known by now
            self.gw.emit(Event("lan.error", "warning", "lan", principal=session.device_id,
                               target=peer, result="closed", reason=repr(exc)))
        finally:
            self._end(session)

    async def _admit(self, session: Session, hello: dict[str, Any], peer: str) -> None:
        ident = session.identity
        tls = self.ssl_context is not None
        await self._register(
            session, float(ident.get("interval") or hello["interval"]),
            ident.get("transport", "ip"),
            {"maker": ident.get("maker", ""), "model": ident.get("model", ""),
             "fw": str(hello.get("fw", ""))[:32], "peer": peer, "encrypted": tls,
             "authenticated": True, **({"tls": ident["tls"], "tls_floor": ident["tls_floor"]}
                                       if "tls" in ident and "tls_floor" in ident else {})},
            connected={"peer": peer, "model": ident.get("model", ""), "tls": tls}, hello=hello)

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
                for msg in dec.feed(data):
                    self._dispatch(session, msg)
            except ProtocolError as exc:
                self.gw.emit(Event("lan.protocol", "warning", "lan",
                                   principal=session.device_id, target=session.device_id,
                                   result="closed", reason=str(exc)))
                return

    def _unknown_message(self, session: Session, reason: str) -> None:
        raise ProtocolError(reason)  # ends the LAN session (a lan.protocol event)


def registry_authorizer(gw: Gateway, expected: dict[str, dict[str, Any]]) -> Authorizer:
    """Sim-only authorizer: admits devices declared in `expected` (no TLS, loopback only)."""

    async def authorize(hello: dict[str, Any], cert: bytes | None) -> dict[str, Any]:
        ident = expected.get(hello["id"])
        if ident is None:
            raise AuthError("device %r is not registered" % hello["id"][:64])
        return dict(ident, id=hello["id"])

    return authorize


def _bytes_waiting(writer: asyncio.StreamWriter) -> Callable[[], bool] | None:
    """A probe: has the peer sent bytes not yet read (FIONREAD: one syscall, nothing read)?"""
    sock = writer.get_extra_info("socket")
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return None

    def probe() -> bool:
        try:
            return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0] > 0
        except OSError:  # closed meanwhile: nothing to protect
            return False

    return probe


def _nothing() -> None:
    """Cancel callback of a connection without a task (never evicted mid-work)."""
