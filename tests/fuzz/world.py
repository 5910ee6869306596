"""What the fuzz targets share: a provisioned site with an installed gateway, quiet logging."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tests.provisioning.sitekit import Kit


def quiet() -> None:
    """Security events are logged at WARNING: thousands a second would only fill the log."""
    logging.disable(logging.CRITICAL)


_KITS: dict[Path, Kit] = {}


def kit(workdir: Path) -> Kit:
    """A site, an installed gateway (state dir) and its bundle, made by the project's own code.

    One per work directory and process: seeds() and setup() of a target share it.
    """
    root = Path(workdir).resolve() / "kit"
    if root not in _KITS:
        root.mkdir(parents=True, exist_ok=True)
        _KITS[root] = Kit(root)
    return _KITS[root]


class FakeWriter:
    """The parts of asyncio.StreamWriter the LAN service uses, collecting what it writes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Collect bytes sent to the peer."""
        self.data += data

    def close(self) -> None:
        """Mark closed."""
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """No socket, no TLS object."""
        return default
