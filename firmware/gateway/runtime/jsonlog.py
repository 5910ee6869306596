"""Structured JSON logging for the gateway (one JSON object per line)."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; events carry their fields under "event"."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if event is not None:
            doc["event"] = event
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup(level: str = "info", stream: TextIO | None = None, file: Path | None = None) -> None:
    """Send the mamori loggers to stderr (and optionally a file) as JSON lines."""
    root = logging.getLogger("mamori")
    root.handlers.clear()
    root.setLevel(level.upper())
    root.propagate = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(file)
        fh.setFormatter(JsonFormatter())
        root.addHandler(fh)
    logging.Formatter.converter = time.gmtime
