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
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from firmware.core import blelink, frames
from firmware.core.errors import AuthError, MamoriError, ProtocolError, StateError
from firmware.core.events import Event
from firmware.gateway.ble.channel import BleSession, BleTransport, GatewayBle, LoopbackTransport
from firmware.gateway.runtime import Gateway, Service

# hello(dict), identity(dict) -> anything, or AuthError (installation-ticket binding)
HelloCheck = Callable[[dict[str, Any], dict[str, Any]], Any]
LinkHandler = Callable[[BleTransport], Coroutine[Any, Any, None]]

HELLO_TIMEOUT = 5.0
CHUNK = blelink.MAX_PAYLOAD - 16  # AEAD tag
MAX_FRAME = 16 * 1024
MAX_BAD_FRAMES = 3
LINK_MODE = "noise-ik"


async def send_frames(session: BleSession, data: bytes) -> None:
    """Send a byte stream of frames as GATT-sized AEAD messages (in order)."""
    for i in range(0, len(data), CHUNK):
        await session.send(data[i:i + CHUNK])


async def recv(session: BleSession, timeout: float) -> bytes:
    """session.recv with a timeout that never swallows a cancellation (asyncio.wait_for can)."""
    async with asyncio.timeout(timeout):
        return await session.recv(None)  # type: ignore[arg-type]  # None: no inner wait_for


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
        return {"radio": self.kind, "state": "up" if self.on_link else "down",
                "links": self.links}


class BleLink:
    """One authenticated, welcomed BLE device."""

    def __init__(self, session: BleSession, identity: dict[str, Any],
                 dec: frames.FrameDecoder) -> None:
        self.session = session
        self.identity = identity
        self.device_id: str = identity["id"]
        self.dec = dec
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.lock = asyncio.Lock()
        self.connected_at = time.time()
        self.task: asyncio.Task[None] | None = None

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one message (frames of one link are never interleaved)."""
        async with self.lock:
            await send_frames(self.session, frames.encode(msg))


class BleService(Service):
    """Accepts BLE device sessions, tracks heartbeats, executes commands on BLE devices."""

    name = "ble"

    def __init__(self, gw: Gateway, radio: BleRadio, hello_check: HelloCheck | None = None,
                 handshake_timeout: float = 10.0) -> None:
        super().__init__(gw)
        self.radio = radio
        self.hello_check = hello_check
        self.handshake_timeout = handshake_timeout
        self.ble: GatewayBle | None = None
        self.links: dict[str, BleLink] = {}
        self.local_ops: dict[str, tuple[float, dict[str, Any]]] = {}
        self.refused = 0
        self.error = ""
        self._cids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

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
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def status(self) -> dict[str, Any]:
        """Radio, sessions, refusals and the link protection every session has."""
        doc = dict(self.radio.status())
        doc.update(sessions=len(self.links), devices=sorted(self.links),
                   refused=self.refused + (self.ble.refused if self.ble else 0),
                   encrypted=True, mode=LINK_MODE, pairing=blelink.SECURE_PAIRING)
        if self.error:
            doc["error"] = self.error
        return doc

    # -- sessions ------------------------------------------------------------------------
    async def serve_link(self, transport: BleTransport) -> None:
        """Authenticate one GATT link and serve its device until it goes quiet."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
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
            if hello.get("id") != dev_id:
                raise AuthError("hello id %r does not match the authenticated device %r"
                                % (str(hello.get("id"))[:64], dev_id))
            for field in ("maker", "model"):
                if field in hello and hello[field] != ident[field]:
                    raise AuthError("hello %s does not match the device record" % field)
            if self.ble is not None:
                self.ble.policy.check_model(ident["maker"], ident["model"], "ble",
                                            str(hello.get("fw") or ""))
            if self.hello_check is not None:
                self.hello_check(hello, ident)
        except MamoriError as exc:
            self._refuse(exc.message, dev_id)
            with contextlib.suppress(Exception):
                await send_frames(session, frames.encode({"type": "refused",
                                                          "reason": "authentication failed"}))
            return None
        link = BleLink(session, ident, dec)
        old = self.links.get(dev_id)
        self.links[dev_id] = link
        if old is not None and old.task is not None:
            old.task.cancel()  # the device reconnected: the new link replaces the old one
        interval = min(max(float(hello.get("interval") or 10.0), 0.5), 3600.0)
        self.gw.register_device(
            dev_id, "ble", interval, int(ident.get("level", 2)), maker=ident["maker"],
            model=ident["model"], fw=str(hello.get("fw", ""))[:32], peer="ble",
            authenticated=True, encrypted=True, mode=LINK_MODE,
            pairing=transport.pairing_mode, cipher="ChaChaPoly/SHA256")
        await link.send({"type": "welcome",
                         "gateway": self.gw.config.extra.get("gateway_id", "gateway"),
                         "interval": interval})
        self.gw.device_seen(dev_id)
        return link

    async def _session_loop(self, link: BleLink) -> None:
        idle = max(60.0, 10 * float(self.gw.liveness.devices[link.device_id].interval))
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
            if self.links.get(link.device_id) is link:
                del self.links[link.device_id]
                self.gw.emit(Event("device.disconnected", "info", "ble",
                                   principal=link.device_id, action="disconnect",
                                   target=link.device_id, result="closed"))
            for fut in link.pending.values():
                if not fut.done():
                    fut.set_exception(StateError("device disconnected"))

    def _dispatch(self, link: BleLink, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        self.gw.device_seen(link.device_id)
        if kind == "hb":
            state = msg.get("state")
            if isinstance(state, dict):
                self.gw.device_info[link.device_id]["reported"] = state
        elif kind == "result":
            fut = link.pending.pop(str(msg.get("cid")), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "local":
            self.local_ops[link.device_id] = (time.monotonic(), msg)
            self.gw.emit(Event("device.local_operation", "notice", "device",
                               principal=link.device_id, action=str(msg.get("action")),
                               target=link.device_id, result="done",
                               params={"state": msg.get("state")}))
        else:
            self.gw.emit(Event("ble.protocol", "warning", "ble", principal=link.device_id,
                               target=link.device_id, result="ignored",
                               reason="unknown message type %r" % str(kind)[:40]))

    # -- commands ------------------------------------------------------------------------
    async def execute(self, device_id: str, action: str, params: dict[str, Any] | None = None,
                      timeout: float = 5.0) -> dict[str, Any]:
        """Send a command to a connected BLE device; return its real result."""
        link = self.links.get(device_id)
        if link is None:
            raise StateError("BLE device %s is not connected" % device_id)
        cid = str(next(self._cids))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.pending[cid] = fut
        await link.send({"type": "cmd", "cid": cid, "action": action, "params": params or {}})
        try:
            res = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            link.pending.pop(cid, None)
            return {"ok": False, "device": device_id, "action": action,
                    "reason": "no answer within %.0f s" % timeout, "actual": None}
        return {"ok": bool(res.get("ok")), "device": device_id, "action": action,
                "commanded": res.get("commanded"), "actual": res.get("actual"),
                "reason": str(res.get("reason", ""))[:200]}

    def recent_local_operation(self, device_id: str, within: float) -> dict[str, Any] | None:
        """The device's manual operation if it happened within the last `within` seconds."""
        op = self.local_ops.get(device_id)
        if op and time.monotonic() - op[0] <= within:
            return op[1]
        return None
