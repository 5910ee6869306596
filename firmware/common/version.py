"""The version of the Mamori software running here."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

# An image or release payload that carries no package metadata stamps its version here.
VERSION_FILE = Path(__file__).resolve().parents[1] / "VERSION"


def software_version() -> str:
    """The installed distribution's version, else the stamped VERSION file, else 0.0.0+unknown."""
    try:
        return metadata.version("mamori")
    except metadata.PackageNotFoundError:
        pass
    try:
        return VERSION_FILE.read_text(encoding="utf-8").strip() or "0.0.0+unknown"
    except OSError:
        return "0.0.0+unknown"
