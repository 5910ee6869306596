"""A command to a device that does not take it (its link stalled mid-write) ends within the
command's deadline with a reason, and the stuck session is closed so the device reconnects."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.gateway.devices.session import DeviceSession, DeviceSessionService
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway


class StalledSession(DeviceSession):
    """A session whose transport never finishes a write (or answers at once when it does)."""

    def __init__(self, stalled: bool) -> None:
        super().__init__({"id": "door"})
        self.stalled = stalled
        self.closed = False

    async def send(self, msg: dict[str, Any]) -> None:
        if self.stalled:
            await asyncio.Event().wait()
        fut = self.pending[msg["cid"]]
        fut.set_result({"ok": True, "commanded": {"locked": False}, "actual": {"locked": False}})

    def close(self) -> None:
        self.closed = True


def _execute(tmp_path: Path, stalled: bool) -> tuple[dict[str, Any], StalledSession, float]:
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=tmp_path), load_board("sim"))
    service: DeviceSessionService[StalledSession] = DeviceSessionService(gw)
    session = StalledSession(stalled)
    service.sessions["door"] = session

    async def main() -> tuple[dict[str, Any], float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        res = await asyncio.wait_for(service.execute("door", "lock", timeout=0.5), 10)
        return res, loop.time() - start

    res, took = asyncio.run(main())
    return res, session, took


def test_a_stalled_write_ends_within_the_deadline_and_closes_the_session(tmp_path: Path) -> None:
    res, session, took = _execute(tmp_path, stalled=True)
    assert res["ok"] is False and "did not take the command" in res["reason"]
    assert session.closed and session.pending == {}
    assert took < 10  # returned by its own deadline, not the test's


def test_a_device_that_takes_the_command_answers(tmp_path: Path) -> None:
    res, session, _ = _execute(tmp_path, stalled=False)
    assert res["ok"] is True and res["actual"] == {"locked": False}
    assert not session.closed
