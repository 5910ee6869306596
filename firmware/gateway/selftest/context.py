"""What a check sees: the live state directory (read only), a scratch copy, board and level."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.gateway.selftest.livecopy import copy_state


class CheckContext:
    """Per-check context. Checks read ``live_state_dir`` and write only under ``scratch()``."""

    def __init__(self, live_state_dir: Path, level: int, board_name: str | None,
                 work_dir: Path, boards_dir: Path | None = None,
                 today: dt.date | None = None, options: dict[str, Any] | None = None) -> None:
        self.live_state_dir = Path(live_state_dir)
        self.level = level
        self.board_name = board_name
        # None: the gateway's own lookup (a flashed board's /etc/mamori/board.toml included).
        self.boards_dir = boards_dir
        self.today = today or dt.date.today()
        self.options = options or {}
        self._work = Path(work_dir)
        self._scratch: Path | None = None
        self.scratch_skipped: list[str] = []

    def board(self) -> Board:
        """The validated board profile (raises ConfigError when missing or invalid)."""
        from firmware.core.errors import ConfigError

        if not self.board_name:
            raise ConfigError("no board recorded for this gateway",
                              hint="pass --board or record it in deviceinfo.json")
        return load_board(self.board_name, self.boards_dir)

    def scratch(self) -> Path:
        """A private copy of the state directory (modes preserved) that the check may change.

        Works on a running gateway: its sockets, locks and pid are left out and its databases
        copied as consistent snapshots (``livecopy``).
        """
        if self._scratch is None:
            dest = self._work / "state"
            self.scratch_skipped = copy_state(self.live_state_dir, dest)
            self._scratch = dest
        return self._scratch

    def tempdir(self) -> Path:
        """An empty private directory for probe material (certificates, sockets)."""
        return Path(tempfile.mkdtemp(prefix="probe-", dir=self._work))
