"""Find and load board profiles (CPython).

Where a profile comes from, first match wins:

1. ``$MAMORI_BOARDS_DIR/<name>.toml`` when that variable is set (benches, tests, vendors);
2. ``/etc/mamori/board.toml`` on a flashed board (the image tool writes the board's own profile
   there; ``$MAMORI_BOARD_FILE`` overrides that path);
3. the ``boards/`` folder of a source checkout (development machines).

Every loaded profile records the file it came from (``Board.source``) so `status` can show it.
Profiles load as a typed, immutable :class:`~firmware.common.boardprofile.Board`.
"""

from __future__ import annotations

import os
from pathlib import Path

from firmware.common import stricttoml
from firmware.common.boardprofile import SOURCE_KEY, Board
from firmware.core.boardspec import validate
from firmware.core.errors import ConfigError

INSTALLED_PROFILE = Path("/etc/mamori/board.toml")


def installed_profile() -> Path:
    """The flashed board's own profile file ($MAMORI_BOARD_FILE or /etc/mamori/board.toml)."""
    env = os.environ.get("MAMORI_BOARD_FILE")
    return Path(env) if env else INSTALLED_PROFILE


def boards_dir() -> Path:
    """The profile folder: $MAMORI_BOARDS_DIR, else the source checkout's boards/ folder."""
    env = os.environ.get("MAMORI_BOARDS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "boards"


def _candidates(directory: Path | None) -> list[Path]:
    """Every profile file visible from here, in precedence order (duplicates by name later)."""
    if directory is not None or os.environ.get("MAMORI_BOARDS_DIR"):
        d = directory or boards_dir()
        return sorted(d.glob("*.toml"))
    found = []
    inst = installed_profile()
    if inst.is_file():
        found.append(inst)
    found += sorted(boards_dir().glob("*.toml"))
    return found


def _name_of(path: Path) -> str:
    if path == installed_profile():
        try:
            return str(stricttoml.load_file(path).get("name", ""))
        except ConfigError:
            return ""
    return path.stem


def list_boards(directory: Path | None = None) -> list[str]:
    """Names of every board profile present."""
    return sorted({n for n in (_name_of(p) for p in _candidates(directory)) if n})


def load_file(path: Path, installed: bool = False) -> Board:
    """Parse and validate one profile file (an installed profile may have any file name)."""
    data = stricttoml.load_file(path)
    validate(data, str(path))
    if not installed and data["name"] != path.stem:
        raise ConfigError(
            "is %r but the file is named %r" % (data["name"], path.name), str(path), "name"
        )
    data[SOURCE_KEY] = str(path)
    return Board.from_validated(data)


def load_board(name: str, directory: Path | None = None) -> Board:
    """Load the profile called NAME, with a clear error when there is none."""
    if not name or "/" in name or name.startswith("."):
        raise ConfigError("invalid board name %r" % name)
    for path in _candidates(directory):
        if _name_of(path) == name:
            return load_file(path, installed=path == installed_profile())
    known = ", ".join(list_boards(directory)) or "none"
    raise ConfigError("unknown board %r" % name, hint="known boards: " + known)
