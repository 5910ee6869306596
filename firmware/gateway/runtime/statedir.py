"""Where a gateway keeps its state (CPython)."""

from __future__ import annotations

import os
from pathlib import Path


def default_state_dir(board: str) -> Path:
    """$MAMORI_STATE_DIR, else the user's data dir ($XDG_DATA_HOME/mamori/BOARD)."""
    env = os.environ.get("MAMORI_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mamori" / board


def add_state_dir_arg(parser: object, board_default: str = "sim") -> None:
    """Add the common --state-dir option to an argparse parser."""
    parser.add_argument(  # type: ignore[attr-defined]
        "--state-dir", type=Path, default=None, metavar="DIR",
        help="gateway state directory (default: $MAMORI_STATE_DIR or "
             "~/.local/share/mamori/%s)" % board_default)


def resolve(state_dir: Path | None, board: str = "sim") -> Path:
    """The state directory to use (ConfigError when that path is a file, not a directory)."""
    from firmware.core.errors import ConfigError

    path = Path(state_dir) if state_dir is not None else default_state_dir(board)
    if path.exists() and not path.is_dir():
        raise ConfigError("is a file, not a gateway state directory", str(path),
                          hint="pass the gateway's --state-dir (a directory)")
    return path


def existing_state_dir(state_dir: Path | None, board: str = "sim") -> Path:
    """The state directory of a gateway that exists (commands that read or change a gateway
    must not make an empty one up)."""
    from firmware.core.errors import StateError

    path = resolve(state_dir, board)
    if not path.is_dir():
        raise StateError("no gateway state directory at %s" % path,
                         "pass the gateway's --state-dir (`mamori-gateway status` shows it)")
    return path
