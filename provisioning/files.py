"""Atomic file writes with the right permissions: secrets 0600, public material 0644."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware.common.fsutil import atomic_write
from firmware.core import strictjson
from firmware.core.errors import ConfigError, ProtocolError, StateError

MAX_JSON = 16 * 1024 * 1024


def write_file(path: Path, data: bytes, secret: bool, exclusive: bool = False) -> None:
    """Write bytes atomically (tmp + fsync + rename); 0600 for secrets, 0644 otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive and path.exists():
        raise StateError("%s already exists" % path, "choose another output file or remove it")
    atomic_write(path, data, 0o600 if secret else 0o644, dir_mode=0o777)


def write_json(path: Path, data: Any, secret: bool, exclusive: bool = False) -> None:
    """Write a JSON document atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_file(path, text.encode(), secret, exclusive)


def read_json(path: Path) -> Any:
    """Read a JSON document with an actionable error."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_JSON + 1)
    except FileNotFoundError:
        raise ConfigError("is missing", str(path))
    except OSError as exc:
        raise ConfigError("cannot be read: %s" % (exc.strerror or exc), str(path))
    try:
        return strictjson.loads(raw, "file", max_bytes=MAX_JSON)
    except ProtocolError as exc:
        raise ConfigError("is not valid JSON: %s" % exc.message, str(path))
