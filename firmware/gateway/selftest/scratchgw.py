"""A scratch gateway for functional checks: real bus and services, but silent.

Its events reach only the subscribers a check attaches (scratch access log, monitor, lists):
they are never written to the process log, so a synthetic rogue alert raised inside a running
gateway (remote self-test) cannot be mistaken for a real one.
"""

from __future__ import annotations

import time
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.core.events import Event
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway


def stand_in_board(name: str) -> Board:
    """A minimal profile named NAME (loopback WAN, no LAN, radios or USB) for a scratch gateway
    when the real profile cannot be loaded; the check reports that separately."""
    return Board.from_dict({
        "name": name or "unknown", "description": "stand-in for an unreadable profile",
        "runtime": "cpython", "cpu": {"class": "host", "arch": "any", "cores": 1},
        "memory": {"ram_kib": 1}, "storage": {"state_dir": ".", "slots": [], "boot": "none"},
        "network": [{"name": "lo", "role": "wan", "kind": "loopback"}],
        "console": {"serial": "none", "login_in_production": False},
        "security": {"secure_element": "none", "crypto_accel": [], "rtc": False},
        "radios": {"ble": False}}, "<stand-in>")


class ScratchGateway(Gateway):
    """A Gateway on a scratch state dir whose emit() does not log."""

    def __init__(self, state_dir: Path, board: Board) -> None:
        super().__init__(GatewayConfig(board_name=board.name,
                                       state_dir=state_dir), board)
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)

    def emit(self, event: Event) -> Event:
        """Stamp and publish like Gateway.emit, without the process log line."""
        self._seq += 1
        if not event.event_id:
            event.event_id = "selftest-%s-%d" % (self.boot_id[:8], self._seq)
        if not event.ts:
            event.ts = time.time()
        if not event.mono:
            event.mono = time.monotonic()
        event.params.setdefault("boot_id", self.boot_id)
        self.recent.append(event.to_dict())
        self.bus.publish(event)
        return event

    def kinds(self, kind: str) -> list[Event]:
        """Events of one kind published so far."""
        return [e for e in self.events if e.kind == kind]
