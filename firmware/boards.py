"""Find and load board profiles from boards/*.toml (CPython)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from firmware.core.boardspec import validate
from firmware.core.errors import ConfigError


def boards_dir() -> Path:
    """Where board profiles live: $MAMORI_BOARDS_DIR or the distribution's boards/ folder."""
    env = os.environ.get("MAMORI_BOARDS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "boards"


def list_boards(directory: Path | None = None) -> list[str]:
    """Names of every board profile present."""
    d = directory or boards_dir()
    return sorted(p.stem for p in d.glob("*.toml"))


def load_file(path: Path) -> dict:
    """Parse and validate one profile file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError("cannot read board profile: %s" % (exc.strerror or exc), str(path))
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("is not valid TOML: " + str(exc), str(path))
    validate(data, str(path))
    if data["name"] != path.stem:
        raise ConfigError(
            "is %r but the file is named %r" % (data["name"], path.name), str(path), "name"
        )
    return data


def load_board(name: str, directory: Path | None = None) -> dict:
    """Load the profile called NAME, with a clear error when there is none."""
    d = directory or boards_dir()
    if not name or "/" in name or name.startswith("."):
        raise ConfigError("invalid board name %r" % name)
    path = d / (name + ".toml")
    if not path.is_file():
        known = ", ".join(list_boards(d)) or "none"
        raise ConfigError("unknown board %r" % name, hint="known boards: " + known)
    return load_file(path)
