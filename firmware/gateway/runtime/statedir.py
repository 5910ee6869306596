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
    """The state directory to use."""
    return Path(state_dir) if state_dir is not None else default_state_dir(board)
