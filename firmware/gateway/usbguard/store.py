"""The USB rule file and maintenance windows on disk: last good policy kept, atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from firmware.common.fsutil import atomic_write
from firmware.core.errors import ConfigError
from firmware.core.usbmaint import MaintenanceWindows
from firmware.core.usbpolicy import BoardUsb, Policy

RULES_FILE = "usb/rules.conf"
WINDOWS_FILE = "usb/maintenance.json"
MAX_RULES_BYTES = 256 * 1024


def read_policy(path: Path, board: BoardUsb) -> Policy:
    """Parse a rule file; every error names the file and line."""
    try:
        raw = path.read_bytes()[:MAX_RULES_BYTES + 1]
    except OSError as exc:
        raise ConfigError("cannot read USB rule file: %s" % exc.strerror, str(path))
    if len(raw) > MAX_RULES_BYTES:
        raise ConfigError("USB rule file larger than %d bytes" % MAX_RULES_BYTES, str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("USB rule file is not UTF-8", str(path))
    return Policy.parse(text, str(path), board)


class PolicyStore:
    """The active policy: reloaded when the file changes, the last good one kept on errors."""

    def __init__(self, path: Path, board: BoardUsb) -> None:
        self.path = path
        self.board = board
        self.policy = Policy([], board, "builtin (board profile + default deny)")
        self.digest = ""
        self.error = ""
        self._seen: tuple[float, int] | None = None

    def reload(self) -> str:
        """'loaded', 'unchanged', 'missing' or 'invalid' (self.error says why)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self._seen is None and not self.digest:
                return "unchanged"
            self._seen = None
            return "missing"  # keep the last good policy: deleting the file opens nothing
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._seen:
            return "unchanged"
        self._seen = stamp
        try:
            policy = read_policy(self.path, self.board)
        except ConfigError as exc:
            self.error = str(exc)
            return "invalid"
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        if digest == self.digest:
            self.error = ""
            return "unchanged"
        self.policy, self.digest, self.error = policy, digest, ""
        return "loaded"


@contextlib.contextmanager
def windows_locked(state_dir: Path, windows: MaintenanceWindows) -> Iterator[MaintenanceWindows]:
    """Load the persisted windows under an exclusive lock and save them back on exit."""
    path = state_dir / WINDOWS_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_name("maintenance.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        windows.load(load_windows(path))
        yield windows
        atomic_write(path, json.dumps(windows.to_list(), sort_keys=True).encode())
    finally:
        os.close(fd)


def load_windows(path: Path) -> list[dict]:
    """The persisted window list ([] when there is none)."""
    try:
        data = json.loads(path.read_bytes()[:65536])
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ConfigError("unreadable maintenance windows: %s" % exc, str(path))
    if not isinstance(data, list):
        raise ConfigError("must be a list of windows", str(path))
    return data
