"""Device agent state machine (portable, sans-I/O): bytes in, bytes out, clock passed in.

The agent sends ``hello``, waits for ``welcome``, then heartbeats every ``interval`` seconds,
executes ``cmd`` messages through its actuator and reports the *actual* state it reached, and
reports manual (local) operations. Anything unexpected from the gateway raises ProtocolError.

★★★ actions (unlock, disarm, …) run only after the device's own ``ThreeStarGuard``
(``firmware.device.portable.threestar``) has checked the platform's signed envelope the gateway
forwards in the ``cmd`` frame (``env``); an agent without a guard refuses them (fail closed).
Local operations (``local``) never need the platform.
"""

from firmware.core import frames

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are not evaluated
    pass
from firmware.core import refusals
from firmware.core.errors import AuthError, CommandRefused, ProtocolError
from firmware.device.portable.threestar import refused_without_guard

CONNECTING = "connecting"
READY = "ready"
CLOSED = "closed"


def lock_actuator(action: str, params: dict, state: dict) -> "tuple[bool, str]":
    """A door lock: lock / unlock."""
    if action == "lock":
        state["locked"] = True
    elif action == "unlock":
        state["locked"] = False
    else:
        return False, "unsupported action " + action
    return True, ""


def shutter_actuator(action: str, params: dict, state: dict) -> "tuple[bool, str]":
    """A window shutter: open / close / set position 0..100."""
    if action == "open":
        state["position"] = 100
    elif action == "close":
        state["position"] = 0
    elif action == "set":
        pos = params.get("position")
        if not isinstance(pos, int) or pos < 0 or pos > 100:
            return False, "position must be an integer 0..100"
        state["position"] = pos
    else:
        return False, "unsupported action " + action
    return True, ""


def sensor_actuator(action: str, params: dict, state: dict) -> "tuple[bool, str]":
    """A door/motion sensor: arm / disarm."""
    if action in ("arm", "disarm"):
        state["armed"] = action == "arm"
        return True, ""
    return False, "unsupported action " + action


ACTUATORS: dict = {"lock": lock_actuator, "shutter": shutter_actuator,
                  "sensor": sensor_actuator}
INITIAL_STATE: dict = {"lock": {"locked": True}, "shutter": {"position": 0},
                       "sensor": {"armed": True, "open": False}}


class DeviceAgent:
    """The device side of a LAN session."""

    def __init__(self, device_id: str, kind: str = "sensor", interval: float = 10.0,
                 maker: str = "", model: str = "", fw: str = "1.0.0",
                 transport: str = "ip", actuator: "Any" = None,
                 state: "dict | None" = None, ticket: "dict | None" = None,
                 secret: "str | None" = None, guard: "Any" = None) -> None:
        self.device_id = device_id
        self.kind = kind
        self.interval = interval
        self.maker = maker
        self.model = model
        self.fw = fw
        self.transport = transport
        self.actuator = actuator or ACTUATORS.get(kind, sensor_actuator)
        self.state = state if state is not None else dict(INITIAL_STATE.get(kind, {}))
        self.phase = CONNECTING
        self.seq = 0
        self.next_hb = 0.0
        self.gateway = ""
        self.results: list = []
        self.refusal = ""  # the gateway's refusal code, once refused
        # One-time installation ticket + secret: sent in the hello until a gateway welcomes us.
        self.ticket = ticket
        self.secret = secret
        # ThreeStarGuard: checks the platform's envelope of every ★★★ action (None: refuse them)
        self.guard = guard
        self.refusals = 0
        self._dec = frames.FrameDecoder()

    def hello(self, now: float) -> bytes:
        """The first frame to send after connecting (with the installation ticket, if any)."""
        msg = {"type": "hello", "id": self.device_id, "transport": self.transport,
               "kind": self.kind, "maker": self.maker, "model": self.model, "fw": self.fw,
               "interval": self.interval,
               "verifies": self.guard.algorithms() if self.guard is not None else []}
        if self.ticket is not None and self.secret:
            msg["ticket"] = self.ticket
            msg["secret"] = self.secret
        return frames.encode(msg)

    def receive(self, data: bytes, now: float) -> bytes:
        """Feed bytes from the gateway; return bytes to send back."""
        out = b""
        for msg in self._dec.feed(data):
            out += self._handle(msg, now)
        return out

    def _handle(self, msg: dict, now: float) -> bytes:
        kind = msg["type"]
        if kind == "refused":
            self.phase = CLOSED
            self.refusal = str(msg.get("code") or refusals.NOT_AUTHORISED)
            raise AuthError("the gateway refused this device: "
                            + refusals.explain(self.refusal))
        if self.phase == CONNECTING:
            if kind != "welcome":
                raise ProtocolError("expected welcome, got " + kind)
            self.phase = READY
            self.gateway = str(msg.get("gateway", ""))
            self.ticket = None  # redeemed: never sent again
            self.secret = None
            self.next_hb = now
            return self.poll(now)
        if kind == "cmd":
            return self._command(msg)
        raise ProtocolError("unexpected message " + kind)

    def _command(self, msg: dict) -> bytes:
        action = str(msg.get("action", ""))
        params = msg.get("params") or {}
        if not isinstance(params, dict):
            params = {}
        try:
            params = self._three_star(action, params, msg.get("env"))
        except CommandRefused as exc:
            self.refusals += 1
            res = {"type": "result", "cid": msg.get("cid"), "ok": False, "commanded": action,
                   "actual": dict(self.state), "reason": "refused by the device: " + exc.message,
                   "refused": exc.reason}
            self.results.append(res)
            return frames.encode(res)
        ok, reason = self.actuator(action, params, self.state)
        res = {"type": "result", "cid": msg.get("cid"), "ok": ok, "commanded": action,
               "actual": dict(self.state), "reason": reason}
        self.results.append(res)
        return frames.encode(res)

    def _three_star(self, action: str, params: dict, env: object) -> dict:
        """The parameters to execute with: the signed ones for a ★★★ action (or refused)."""
        if self.guard is None:
            refusal = refused_without_guard(action)
            if refusal is not None:
                raise refusal
            return params
        if not self.guard.guards(action):
            return params
        return dict(self.guard.check(action, env)["params"])

    def poll(self, now: float) -> bytes:
        """Call periodically: returns a heartbeat frame when one is due, else b''."""
        if self.phase != READY or now < self.next_hb:
            return b""
        self.seq += 1
        self.next_hb = now + self.interval
        return frames.encode({"type": "hb", "seq": self.seq, "state": self.state})

    def local(self, action: str, now: float) -> bytes:
        """A manual operation at the device (button, key): apply it and tell the gateway."""
        ok, reason = self.actuator(action, {}, self.state)
        if not ok:
            raise ProtocolError(reason)
        if self.phase != READY:
            return b""
        return frames.encode({"type": "local", "action": action, "state": self.state})

    @property
    def ready(self) -> bool:
        """True once the gateway has welcomed the device."""
        return self.phase == READY
