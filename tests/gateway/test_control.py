"""The local control socket: permissions, peer credentials, malformed and unknown requests."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import AuthError, ConfigError, PolicyError, StateError
from firmware.core.events import Event
from firmware.gateway.runtime import control
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway


def make(state: Path) -> tuple[ControlService, list[Event]]:
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    events: list[Event] = []
    gw.bus.subscribe(events.append)
    svc = ControlService(gw)

    async def echo(params: dict[str, Any]) -> dict[str, Any]:
        return {"echo": params.get("x")}

    async def deny(params: dict[str, Any]) -> dict[str, Any]:
        raise PolicyError("not now", "try later")

    svc.register("test.echo", echo)
    svc.register("test.deny", deny)
    return svc, events


def raw(path: Path, data: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    s.sendall(data)
    out = b""
    while not out.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    return out


def test_commands_errors_and_socket_mode(tmp_path: Path) -> None:
    async def main() -> None:
        svc, events = make(tmp_path)
        await svc.start()
        assert os.stat(svc.path).st_mode & 0o777 == 0o600
        assert os.stat(svc.path.parent).st_mode & 0o077 == 0
        assert await asyncio.to_thread(control.request, tmp_path, "test.echo",
                                       {"x": "secret-value"}) == {"echo": "secret-value"}
        with pytest.raises(control.ControlError, match="not now"):
            await asyncio.to_thread(control.request, tmp_path, "test.deny")
        with pytest.raises(control.ControlError, match="unknown control command"):
            await asyncio.to_thread(control.request, tmp_path, "nope")
        for junk in (b"not json\n", b"[1,2]\n", b'{"cmd": "test.echo", "params": 5}\n'):
            answer = json.loads(await asyncio.to_thread(raw, svc.path, junk))
            assert answer["ok"] is False and answer["error"]
        assert svc.status()["served"] == 1
        # parameters (which may carry secrets) never reach an event
        assert all("secret-value" not in repr(e.to_dict()) for e in events)
        assert [e.result for e in events if e.kind == "control.command"] == ["ok", "failed"]
        with pytest.raises(StateError):
            svc.register("test.echo", lambda p: None)  # type: ignore[arg-type,return-value]
        await svc.stop()
        assert not svc.path.exists()
        with pytest.raises(StateError, match="no gateway is running"):
            await asyncio.to_thread(control.request, tmp_path, "test.echo")

    asyncio.run(main())


def test_peer_that_is_not_root_nor_gateway_user_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        svc, events = make(tmp_path)
        svc.allowed_uids = {os.getuid() + 4242}  # pretend we are someone else
        await svc.start()
        with pytest.raises(AuthError, match="closed the control connection"):
            await asyncio.to_thread(control.request, tmp_path, "test.echo")
        refused = [e for e in events if e.kind == "auth.refused"]
        assert len(refused) == 1 and refused[0].severity == "alert"
        assert refused[0].principal == "uid:%d" % os.getuid()
        await svc.stop()

    asyncio.run(main())


def test_oversized_line_closes_the_connection(tmp_path: Path) -> None:
    async def main() -> None:
        svc, _events = make(tmp_path)
        await svc.start()
        out = await asyncio.to_thread(raw, svc.path, b"x" * (control.MAX_LINE + 10) + b"\n")
        assert out == b""
        assert await asyncio.to_thread(control.request, tmp_path, "test.echo",
                                       {"x": 1}) == {"echo": 1}
        await svc.stop()

    asyncio.run(main())


def test_state_dir_too_long_for_a_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)

    async def main() -> None:
        svc, _ = make(deep)
        with pytest.raises(ConfigError, match="shorter --state-dir"):
            await svc.start()

    asyncio.run(main())
