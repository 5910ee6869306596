"""Device sessions independent of their transport: dispatch, commands, registration (CPython).

The LAN service (TCP + TLS streams) and the BLE service (Noise IK over GATT) carry the same
messages once a device is authenticated and has sent its ``hello``: ``hb`` {seq, state},
``result`` {cid, ok, commanded, actual, reason} for a gateway ``cmd`` {cid, action, params}, and
``local`` {action, state} (a manual operation at the device, which has priority over remote
commands). ``DeviceSessionService`` keeps that part once; each service keeps only its transport.
Each message is checked first (``firmware.core.sessionmsg``: a token ``action``, a small
``state``); one that does not fit goes to the transport's ``_unknown_message`` with the device
named. Manual operations and results nobody waits for are recorded through a per-device rate
limit (``limiter.py``): a flooding device costs one alert and one count per window.

★★★ actions: ``execute`` forwards the platform's signed envelope unchanged in the ``cmd`` frame
(``env``) so the device checks the signature itself; for a device that declared in its hello
that it cannot verify (``verifies`` without ``ed25519``) such an action is refused here, before
anything is sent (``cannot-verify``: fail closed). ``close_device`` ends a device's session from
the gateway's side (revocation).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from typing import Any, Generic, TypeVar

from firmware.core.errors import ProtocolError, StateError
from firmware.core.events import Event
from firmware.core.sessionmsg import parse_message
from firmware.core.threestar import actions_for, can_verify
from firmware.gateway.devices.limiter import DeviceEventLimiter
from firmware.gateway.runtime.gateway import Gateway, Service


class DeviceSession:
    """One authenticated device on some transport: identity, pending commands, last report."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self.identity = identity
        self.device_id: str = identity["id"]
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.connected_at = time.time()
        self.last_state: dict[str, Any] = {}
        self.verifies: list[str] = []  # signature algorithms the device declared it checks
        self.three_star = actions_for(identity.get("three_star"))

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one message to the device (the transport's part)."""
        raise NotImplementedError

    def close(self) -> None:
        """End the session from the gateway's side (the transport's part)."""
        raise NotImplementedError


S = TypeVar("S", bound=DeviceSession)


class DeviceSessionService(Service, Generic[S]):
    """The transport-independent half of a device channel service; ``name`` is the event source."""

    # "%s" is the device id; the StateError of execute() on a device with no session.
    not_connected = "device %s is not connected"

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.sessions: dict[str, S] = {}
        self.local_ops: dict[str, tuple[float, dict[str, Any]]] = {}
        self._cids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.limiter = DeviceEventLimiter(gw.emit, self.name)

    # -- connection tasks ----------------------------------------------------------------
    def _track(self) -> asyncio.Task[Any] | None:
        """Register the running connection task so stop() can cancel it."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        return task

    async def _cancel_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- session life --------------------------------------------------------------------
    async def _register(self, session: S, raw_interval: float, transport: str,
                        info: dict[str, Any],
                        connected: dict[str, Any] | None = None,
                        hello: dict[str, Any] | None = None) -> float:
        """Make `session` the device's session, declare it to liveness, welcome it.

        An older session of the same device is closed. `info` is the device information shown
        in the status view; `connected`, when given, is emitted as a ``device.connected`` event.
        `hello` gives what the device declared (``verifies``). Returns the heartbeat interval
        the device was welcomed with.
        """
        declared = (hello or {}).get("verifies")
        if isinstance(declared, list):
            session.verifies = [str(a)[:16] for a in declared[:8]]
        info = dict(info, three_star=list(session.three_star), verifies=session.verifies,
                    three_star_policy=three_star_policy(session.verifies))
        if session.identity.get("serial") is not None:
            info["serial"] = str(session.identity["serial"])
        old = self.sessions.get(session.device_id)
        self.sessions[session.device_id] = session
        if old is not None:
            old.close()  # the device reconnected: the new session replaces the old one
        if not math.isfinite(raw_interval):  # a NaN would pass the clamp below
            raise ProtocolError("heartbeat interval %r is not a finite number" % raw_interval)
        interval = min(max(raw_interval, 0.5), 3600.0)
        self.gw.register_device(session.device_id, transport, interval,
                                int(session.identity.get("level", 2)), **info)
        await session.send({"type": "welcome",
                            "gateway": self.gw.gateway_id or "gateway",
                            "interval": interval})
        if connected is not None:
            self.gw.emit(Event("device.connected", "info", self.name,
                               principal=session.device_id, action="connect",
                               target=session.device_id, result="admitted", params=connected))
        self.gw.device_seen(session.device_id)
        return interval

    def _idle_timeout(self, session: S) -> float:
        """How long a session may stay silent before it is closed."""
        return max(60.0, 10 * float(self.gw.liveness.devices[session.device_id].interval))

    def _end(self, session: S) -> None:
        """Forget an ended session and fail the commands still waiting for it."""
        if self.sessions.get(session.device_id) is session:
            del self.sessions[session.device_id]
            self.gw.emit(Event("device.disconnected", "info", self.name,
                               principal=session.device_id, action="disconnect",
                               target=session.device_id, result="closed"))
        for fut in session.pending.values():
            if not fut.done():
                fut.set_exception(StateError("device disconnected"))
        self.limiter.flush()

    # -- messages ------------------------------------------------------------------------
    def _dispatch(self, session: S, msg: dict[str, Any]) -> None:
        self.gw.device_seen(session.device_id)
        try:
            msg = parse_message(msg)
        except ProtocolError as exc:
            self._unknown_message(session, "device %s: %s" % (session.device_id, exc.message))
            return
        kind = msg["type"]
        if kind == "hb":
            state = msg.get("state")
            if isinstance(state, dict):
                session.last_state = state
                self.gw.device_info[session.device_id]["reported"] = state
        elif kind == "result":
            cid = str(msg.get("cid"))[:32]
            fut = session.pending.pop(cid, None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
            elif self.limiter.allow(session.device_id, "result"):
                self.gw.emit(Event("device.unsolicited_result", "warning", self.name,
                                   principal=session.device_id, action="result",
                                   target=session.device_id, result="ignored",
                                   reason="result for command id %r, which is not waiting "
                                          "for an answer" % cid))
        else:  # local
            self.local_ops[session.device_id] = (time.monotonic(), msg)
            if self.limiter.allow(session.device_id, "local"):
                self.gw.emit(Event("device.local_operation", "notice", "device",
                                   principal=session.device_id, action=msg["action"],
                                   target=session.device_id, result="done",
                                   params={"state": msg.get("state")}))

    def _unknown_message(self, session: S, reason: str) -> None:
        """What the transport does with a message type it does not know."""
        raise NotImplementedError

    def close_device(self, device_id: str, reason: str) -> bool:
        """End the device's session now (e.g. it was revoked); True when one was open."""
        session = self.sessions.get(device_id)
        if session is None:
            return False
        self.gw.emit(Event("device.session_closed", "notice", self.name,
                           principal=device_id, action="disconnect", target=device_id,
                           result="closed", reason=reason))
        session.close()
        self._end(session)
        return True

    # -- commands ------------------------------------------------------------------------
    async def execute(self, device_id: str, action: str, params: dict[str, Any] | None = None,
                      timeout: float = 5.0,
                      envelope: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command to a connected device; return its real result (commanded vs actual).

        `envelope` is the platform's signed command, forwarded unchanged for the device to check.
        """
        session = self.sessions.get(device_id)
        if session is None:
            raise StateError(self.not_connected % device_id)
        if action in session.three_star and not can_verify(session.verifies):
            return {"ok": False, "device": device_id, "action": action, "actual": None,
                    "refused": "cannot-verify",
                    "reason": "device %s cannot verify the platform's signature: ★★★ action "
                              "'%s' refused (fail closed)" % (device_id[:64], action[:64])}
        cid = str(next(self._cids))
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        session.pending[cid] = fut
        msg: dict[str, Any] = {"type": "cmd", "cid": cid, "action": action,
                               "params": params or {}}
        if envelope is not None:
            msg["env"] = envelope
        try:
            await asyncio.wait_for(session.send(msg), timeout)
        except TimeoutError:
            # A device that cannot take one small message within the deadline is stuck (it stopped
            # reading, or its link stalled mid-write): the session is ended so it reconnects.
            session.pending.pop(cid, None)
            session.close()
            return {"ok": False, "device": device_id, "action": action, "actual": None,
                    "reason": "the device did not take the command within %.0f s; its session "
                              "was closed" % timeout}
        try:
            res = await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            session.pending.pop(cid, None)
            return {"ok": False, "device": device_id, "action": action,
                    "reason": "no answer within %.0f s" % timeout, "actual": None}
        out = {"ok": bool(res.get("ok")), "device": device_id, "action": action,
               "commanded": res.get("commanded"), "actual": res.get("actual"),
               "reason": str(res.get("reason", ""))[:200]}
        if isinstance(res.get("refused"), str):
            out["refused"] = res["refused"][:40]
        return out

    def recent_local_operation(self, device_id: str, within: float) -> dict[str, Any] | None:
        """The device's manual operation if it happened within the last `within` seconds."""
        op = self.local_ops.get(device_id)
        if op and time.monotonic() - op[0] <= within:
            return op[1]
        return None


def three_star_policy(verifies: list[str]) -> str:
    """What happens to the device's ★★★ actions, as the status view shows it."""
    if can_verify(verifies):
        return "forwarded signed; the device checks the platform's signature (%s)" \
            % ", ".join(verifies)
    return ("refused (fail closed): the device declares no signature algorithm it can check "
            "(hello verifies: %s), so it could not verify the platform's signature"
            % (", ".join(verifies) or "none"))
