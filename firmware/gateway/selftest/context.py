"""What a check sees: the live state directory (read only), a scratch copy, board and level."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board


def _sockets(directory: str, names: list[str]) -> set[str]:
    """Names in DIRECTORY that are sockets or FIFOs (copytree's ignore hook)."""
    out = set()
    for name in names:
        try:
            mode = os.lstat(os.path.join(directory, name)).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            out.add(name)
    return out


def _copy_present(src: str, dst: str) -> str:
    """copy2, except that a file the running gateway replaced meanwhile (a temporary file
    renamed over its target) is simply not part of the copy."""
    try:
        return str(shutil.copy2(src, dst))
    except FileNotFoundError:
        return dst


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

    def board(self) -> dict[str, Any]:
        """The validated board profile (raises ConfigError when missing or invalid)."""
        from firmware.core.errors import ConfigError

        if not self.board_name:
            raise ConfigError("no board recorded for this gateway",
                              hint="pass --board or record it in deviceinfo.json")
        return load_board(self.board_name, self.boards_dir)

    def scratch(self) -> Path:
        """A private copy of the state directory (modes preserved) that the check may change."""
        if self._scratch is None:
            dest = self._work / "state"
            # A running gateway's control socket cannot be copied (nor would a copy work).
            shutil.copytree(self.live_state_dir, dest, symlinks=True, ignore=_sockets,
                            copy_function=_copy_present)
            self._scratch = dest
        return self._scratch

    def tempdir(self) -> Path:
        """An empty private directory for probe material (certificates, sockets)."""
        return Path(tempfile.mkdtemp(prefix="probe-", dir=self._work))
