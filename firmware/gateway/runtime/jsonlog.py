"""Gateway logging: JSON lines (journald, files, pipes) or readable text (a terminal)."""

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


class TextFormatter(logging.Formatter):
    """One readable line per record (a person at a terminal): time, level, what happened."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record."""
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            parts = [event.get("kind", ""), event.get("target", ""), event.get("result", "")]
            text = " ".join(str(p) for p in parts if p)
            if event.get("principal"):
                text += " by " + str(event["principal"])
            if event.get("reason"):
                text += ": " + str(event["reason"])
            level = str(event.get("severity", record.levelname.lower()))
        else:
            text, level = record.getMessage(), record.levelname.lower()
        line = "%s %-7s %s" % (when, level, text)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


FORMATS = ("text", "json")


def default_format(stream: TextIO | None = None) -> str:
    """Text for a person at a terminal, JSON lines for journald, files and pipes."""
    s = stream or sys.stderr
    try:
        return "text" if s.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


def setup(level: str = "info", stream: TextIO | None = None, file: Path | None = None,
          fmt: str = "json") -> None:
    """Send the mamori loggers to stderr (text or JSON lines) and optionally a file (JSON)."""
    root = logging.getLogger("mamori")
    root.handlers.clear()
    root.setLevel(level.upper())
    root.propagate = False
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter() if fmt == "text" else JsonFormatter())
    root.addHandler(handler)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(file)
        fh.setFormatter(JsonFormatter())
        root.addHandler(fh)
    logging.Formatter.converter = time.gmtime
