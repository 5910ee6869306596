"""BLE devices in the running gateway: Noise IK sessions carrying the LAN message protocol.

A radio (``LoopbackBleRadio`` on the sim board, ``BleakRadio`` on Linux boards) hands every new
GATT link to ``BleService.serve_link``. ``GatewayBle`` authenticates the device (Noise IK with
its site-signed record; legacy pairing refused); then the same framed messages as the LAN flow
inside the AEAD channel: device ``hello`` -> gateway ``welcome``, ``hb``, ``cmd``/``result``,
``local``. Frames are split into GATT-sized AEAD messages and reassembled on the other side.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from firmware.common.ble.channel import BleSession, BleTransport, LoopbackTransport
from firmware.common.ble.stream import recv, send_frames
from firmware.core import blelink, frames
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, MamoriError, ProtocolError, StateError
from firmware.core.events import Event
from firmware.core.hello import parse_hello
from firmware.core.threestar import actions_for
from firmware.gateway.ble.channel import GatewayBle
from firmware.gateway.devices.session import DeviceSession, DeviceSessionService
from firmware.gateway.runtime.gateway import Gateway

# hello(dict), identity(dict) -> anything, or AuthError (installation-ticket binding)
HelloCheck = Callable[[dict[str, Any], dict[str, Any]], Any]
LinkHandler = Callable[[BleTransport], Coroutine[Any, Any, None]]

HELLO_TIMEOUT = 5.0
MAX_FRAME = 16 * 1024
MAX_BAD_FRAMES = 3
LINK_MODE = "noise-ik"


class BleRadio(Protocol):
    """Where BLE links come from."""

    kind: str

    async def start(self, on_link: LinkHandler) -> None:
        """Begin accepting links; call on_link(transport) for each."""
        ...

    async def stop(self) -> None:
        """Stop accepting links."""
        ...

    def status(self) -> dict[str, Any]:
        """Radio state for the status view."""
        ...


class LoopbackBleRadio:
    """The sim board's air: simulated devices call ``connect`` to open a link to the gateway."""

    kind = "loopback"

    def __init__(self) -> None:
        self.on_link: LinkHandler | None = None
        self.links = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, on_link: LinkHandler) -> None:
        """Accept links from now on."""
        self.on_link = on_link

    async def stop(self) -> None:
        """Drop every link handler."""
        self.on_link = None
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def connect(self, pairing_mode: str = blelink.SECURE_PAIRING) -> LoopbackTransport:
        """A device connects: returns the device's end of a new link."""
        if self.on_link is None:
            raise StateError("the gateway's BLE radio is not running")
        dev, gw = LoopbackTransport.pair(pairing_mode)
        self.links += 1
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self.on_link(gw))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return dev

    def status(self) -> dict[str, Any]:
        """Links opened so far."""
        state = "up" if self.on_link else "down"
        return {"radio": self.kind, "backend": "sim", "library": "in-process loopback",
                "version": "-", "state": state, "controller": {"state": state},
                "links": self.links}


class BleLink(DeviceSession):
    """One authenticated, welcomed BLE device."""

    def __init__(self, session: BleSession, identity: dict[str, Any],
                 dec: frames.FrameDecoder) -> None:
        super().__init__(identity)
        self.session = session
        self.dec = dec
        self.lock = asyncio.Lock()
        self.task: asyncio.Task[Any] | None = None

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one message (frames of one link are never interleaved)."""
        async with self.lock:
            await send_frames(self.session, frames.encode(msg))

    def close(self) -> None:
        """Stop serving the link."""
        if self.task is not None:
            self.task.cancel()


class BleService(DeviceSessionService[BleLink]):
    """Accepts BLE device sessions, tracks heartbeats, executes commands on BLE devices."""

    name = "ble"
    not_connected = "BLE device %s is not connected"

    def __init__(self, gw: Gateway, radio: BleRadio, hello_check: HelloCheck | None = None,
                 handshake_timeout: float = 10.0) -> None:
        super().__init__(gw)
        self.radio = radio
        self.hello_check = hello_check
        self.handshake_timeout = handshake_timeout
        self.ble: GatewayBle | None = None
        self.refused = 0
        self.error = ""

    @property
    def links(self) -> dict[str, BleLink]:
        """The welcomed BLE devices (the sessions) by device id."""
        return self.sessions

    async def start(self) -> None:
        """Load the gateway's BLE identity and start the radio."""
        self.ble = GatewayBle(self.gw.state_dir, self.gw.emit)
        try:
            await self.radio.start(self.serve_link)
        except MamoriError as exc:  # no adapter: the rest of the gateway still runs
            self.error = str(exc)
            self.gw.emit(Event("ble.unavailable", "warning", "ble", action="start",
                               result="radio down", reason=self.error))

    async def stop(self) -> None:
        """Stop the radio and close every session."""
        await self.radio.stop()
        await self._cancel_tasks()
        self.limiter.flush(force=True)

    def status(self) -> dict[str, Any]:
        """Radio, sessions, refusals and the link protection every session has."""
        doc = dict(self.radio.status())
        if self.error:
            doc["controller"] = dict(doc.get("controller") or {}, state="error")
        doc.update(sessions=len(self.links), devices=sorted(self.links),
                   refused=self.refused + (self.ble.refused if self.ble else 0),
                   encrypted=True, mode=LINK_MODE, pairing=blelink.SECURE_PAIRING)
        if self.error:
            doc["error"] = self.error
        return doc

    # -- sessions ------------------------------------------------------------------------
    async def serve_link(self, transport: BleTransport) -> None:
        """Authenticate one GATT link and serve its device until it goes quiet."""
        task = self._track()
        try:
            assert self.ble is not None
            session = await self.ble.accept(transport, self.handshake_timeout)
            if session is None:
                return
            link = await self._welcome(session, transport)
            if link is not None:
                link.task = task
                await self._session_loop(link)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # one bad link never takes the service down
            self.gw.emit(Event("ble.error", "warning", "ble", target="ble", result="closed",
                               reason=repr(exc)[:200]))
        finally:
            if task is not None:
                self._tasks.discard(task)

    def _refuse(self, reason: str, principal: str) -> None:
        self.refused += 1
        self.gw.emit(Event("auth.refused", "alert", "ble", principal=principal,
                           action="connect", target="ble", result="refused", reason=reason))

    async def _read(self, session: BleSession, dec: frames.FrameDecoder,
                    timeout: float) -> list[dict[str, Any]]:
        """Messages from the next AEAD message(s); [] while a frame is still incomplete."""
        return [dict(m) for m in dec.feed(await recv(session, timeout))]

    async def _welcome(self, session: BleSession, transport: BleTransport) -> BleLink | None:
        ident = session.peer
        dev_id = str(ident["id"])
        dec = frames.FrameDecoder(MAX_FRAME)
        deadline = time.monotonic() + HELLO_TIMEOUT
        msgs: list[dict[str, Any]] = []
        try:
            while not msgs:
                msgs = await self._read(session, dec, max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            self._refuse("no hello within %.0f s" % HELLO_TIMEOUT, dev_id)
            return None
        except MamoriError as exc:
            self._refuse("malformed hello: " + exc.message, dev_id)
            return None
        hello = msgs[0]
        try:
            if len(msgs) > 1:
                raise ProtocolError("device sent data before the gateway's welcome")
            if hello.get("type") != "hello":
                raise ProtocolError("first message is not a hello")
            hello = parse_hello(hello)
            if hello.get("id") != dev_id:
                raise AuthError("hello id %r does not match the authenticated device %r"
                                % (str(hello.get("id"))[:64], dev_id))
            for field in ("maker", "model"):
                if field in hello and hello[field] != ident[field]:
                    raise AuthError("hello %s does not match the device record" % field)
            if self.ble is not None:
                entry = self.ble.policy.check_model(ident["maker"], ident["model"], "ble",
                                                    str(hello.get("fw") or ""))
                ident["three_star"] = list(actions_for(entry))
            if self.hello_check is not None:
                self.hello_check(hello, ident)
        except MamoriError as exc:
            self._refuse(exc.message, dev_id)
            with contextlib.suppress(Exception):
                await send_frames(session, frames.encode(rc.refusal_message(rc.code_of(exc))))
            return None
        link = BleLink(session, ident, dec)
        await self._register(
            link, float(hello["interval"]), "ble",
            {"maker": ident["maker"], "model": ident["model"],
             "fw": str(hello.get("fw", ""))[:32], "peer": "ble", "authenticated": True,
             "encrypted": True, "mode": LINK_MODE, "pairing": transport.pairing_mode,
             "cipher": "ChaChaPoly/SHA256"}, hello=hello)
        return link

    async def _session_loop(self, link: BleLink) -> None:
        idle = self._idle_timeout(link)
        bad = 0
        try:
            while True:
                try:
                    pt = await recv(link.session, idle)
                except TimeoutError:
                    return
                except MamoriError as exc:
                    # A forged, replayed or reordered frame is dropped; a stream of them ends it.
                    bad += 1
                    self.gw.emit(Event("ble.frame_rejected", "warning", "ble",
                                       principal=link.device_id, target=link.device_id,
                                       result="dropped", reason=exc.message))
                    if bad >= MAX_BAD_FRAMES:
                        return
                    continue
                try:
                    msgs = [dict(m) for m in link.dec.feed(pt)]
                except ProtocolError as exc:  # authentic but malformed: the stream is lost
                    self.gw.emit(Event("ble.protocol", "warning", "ble",
                                       principal=link.device_id, target=link.device_id,
                                       result="closed", reason=exc.message))
                    return
                for msg in msgs:
                    self._dispatch(link, msg)
        finally:
            self._end(link)

    def _unknown_message(self, link: BleLink, reason: str) -> None:
        self.gw.emit(Event("ble.protocol", "warning", "ble", principal=link.device_id,
                           target=link.device_id, result="ignored", reason=reason))
