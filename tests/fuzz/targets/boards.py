"""Board profiles: the TOML file a vendor or operator puts on the board (/etc/mamori/board.toml).

The strict TOML layer (size, depth, digits, finite floats) then the profile schema (exact types,
unknown keys refused by name). Every malformed profile must be a ConfigError naming the file
and, past the syntax, the field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from firmware.common import stricttoml
from firmware.core.boardspec import validate
from firmware.core.errors import ConfigError
from tests.conftest import ROOT

MAX_LEN = 16384


def seeds(workdir: Path) -> list[bytes]:
    """Every board profile of the repository."""
    return [p.read_bytes() for p in sorted((ROOT / "boards").glob("*.toml"))]


def setup(workdir: Path) -> Callable[[bytes], None]:
    """Parse then validate, as firmware.common.boards.load_file does."""

    def one(data: bytes) -> None:
        doc = stricttoml.loads(data, "fuzz.toml")
        try:
            validate(doc, "fuzz.toml")
        except ConfigError as exc:
            if not exc.source:
                raise AssertionError("profile error without the file name: %s" % exc)
            raise
    return one
