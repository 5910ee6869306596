"""Local control channel of a running gateway: a Unix socket, line-delimited JSON (CPython).

``STATE_DIR/run/control.sock`` (0600, in the 0700 ``run`` directory). A client may connect only
if the kernel says (SO_PEERCRED) it is root or the gateway's own uid. One request per line:
``{"cmd": NAME, "params": {...}}``; one answer per line: ``{"ok": true, "result": {...}}`` or
``{"ok": false, "error": MESSAGE, "hint": HINT}``. Services add commands with ``register``;
each command is logged as an event (never its parameters, which may carry secrets).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware.core import strictjson
from firmware.core.errors import AuthError, ConfigError, MamoriError, ProtocolError, StateError
from firmware.core.events import Event
from firmware.gateway.runtime.gateway import Gateway, Service

SOCKET = "run/control.sock"
MAX_LINE = 64 * 1024
REQUEST_DEPTH = 8
MAX_CLIENTS = 8
READ_TIMEOUT = 10.0
# The kernel's sockaddr_un path limit (108 bytes with the NUL on Linux).
MAX_PATH = 107

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def socket_path(state_dir: Path) -> Path:
    """Where a gateway with this state directory listens."""
    return Path(state_dir) / SOCKET


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def _check_path(path: Path) -> None:
    if len(os.fsencode(str(path))) > MAX_PATH:
        raise ConfigError("control socket path is longer than %d bytes" % MAX_PATH, str(path),
                          hint="use a shorter --state-dir")


class ControlService(Service):
    """Serves registered commands on the local control socket."""

    name = "control"

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.path = socket_path(gw.state_dir)
        self.handlers: dict[str, Handler] = {}
        self.allowed_uids = {0, os.getuid()}
        self.served = 0
        self.refused = 0
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    def register(self, name: str, handler: Handler) -> None:
        """Make `name` callable over the socket (one handler per name)."""
        if name in self.handlers:
            raise StateError("control command %s is already registered" % name)
        self.handlers[name] = handler

    async def start(self) -> None:
        """Create the socket (0600) and listen."""
        _check_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of a crashed run (the state dir is locked)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._on_client, str(self.path),
                                                           limit=MAX_LINE)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.close()
        for t in list(self._clients):
            t.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def status(self) -> dict[str, Any]:
        """Socket path, commands and counters."""
        return {"socket": str(self.path), "commands": sorted(self.handlers),
                "served": self.served, "refused": self.refused}

    async def _on_client(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else -1
            if uid not in self.allowed_uids or len(self._clients) > MAX_CLIENTS:
                self.refused += 1
                self.gw.emit(Event("auth.refused", "alert", "control", principal="uid:%d" % uid,
                                   action="connect", target="control", result="refused",
                                   reason="control socket client is neither root nor the "
                                          "gateway's user" if uid not in self.allowed_uids
                                   else "too many control clients"))
                return
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT)
                except (TimeoutError, ValueError, asyncio.LimitOverrunError):
                    return
                if not line:
                    return
                answer = await self._answer(line, uid)
                writer.write(json.dumps(answer, sort_keys=True).encode() + b"\n")
                await writer.drain()
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._clients.discard(task)

    async def _answer(self, line: bytes, uid: int) -> dict[str, Any]:
        try:
            req = strictjson.loads(line, "request", REQUEST_DEPTH)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ProtocolError("a request is {\"cmd\": NAME, \"params\": {...}}")
            params = req.get("params") or {}
            if not isinstance(params, dict):
                raise ProtocolError("params must be an object")
        except ProtocolError as exc:
            return {"ok": False, "error": exc.message, "hint": ""}
        name = req["cmd"][:64]
        handler = self.handlers.get(name)
        if handler is None:
            return {"ok": False, "error": "unknown control command %s" % name,
                    "hint": "known: " + ", ".join(sorted(self.handlers))}
        try:
            result = await handler(params)
        except MamoriError as exc:
            self.gw.emit(Event("control.command", "warning", "control", principal="uid:%d" % uid,
                               action=name, target="gateway", result="failed",
                               reason=exc.message))
            return {"ok": False, "error": exc.message, "hint": exc.hint or ""}
        self.served += 1
        self.gw.emit(Event("control.command", "notice", "control", principal="uid:%d" % uid,
                           action=name, target="gateway", result="ok"))
        return {"ok": True, "result": result}


class ControlError(MamoriError):
    """The running gateway answered a control request with an error."""


def request(state_dir: Path, cmd: str, params: dict[str, Any] | None = None,
            timeout: float = 30.0) -> dict[str, Any]:
    """Send one command to the gateway running on `state_dir`; return its result."""
    path = socket_path(state_dir)
    _check_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise StateError("no gateway is running on %s" % state_dir,
                             "start it with `mamori-gateway run --state-dir DIR`")
        except PermissionError:
            raise AuthError("not allowed to use the gateway's control socket",
                            "run as root or as the gateway's user")
        buf = b""
        try:
            sock.sendall(json.dumps({"cmd": cmd, "params": params or {}}).encode() + b"\n")
        except (BrokenPipeError, ConnectionResetError):  # refused at once
            raise AuthError("the gateway closed the control connection (not authorised?)")
        while not buf.endswith(b"\n"):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:  # refused before it read our request
                break
            if not chunk:
                break
            buf += chunk
            if len(buf) > MAX_LINE:
                raise ProtocolError("control answer is oversized")
    except TimeoutError:
        raise StateError("the gateway did not answer within %.0f s" % timeout)
    finally:
        sock.close()
    if not buf:
        raise AuthError("the gateway closed the control connection (not authorised?)")
    try:
        answer = json.loads(buf)
    except ValueError:
        raise ProtocolError("control answer is not JSON")
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "failed")), str(answer.get("hint") or ""))
    return dict(answer.get("result") or {})
