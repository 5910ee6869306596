"""What the installer sees while `mamori commission` runs: one line per step, waits that say
what they wait for, then a summary (stderr; stdout carries only the --json result)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Display:
    """Progress lines on stderr (a terminal gets the waiting line rewritten in place)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        try:
            self.tty = self.stream.isatty()
        except (AttributeError, ValueError):
            self.tty = False
        self._waiting = ""
        self._last_wait = 0.0

    def _print(self, text: str) -> None:
        if self._waiting and self.tty:
            self.stream.write("\r\033[K")
        self._waiting = ""
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, n: int, title: str, resumed: bool = False) -> None:
        """A step begins (or is skipped as already done)."""
        self._print("[%d/%d] %s%s" % (n, self.total, title, " (done before)" if resumed else ""))

    def note(self, text: str) -> None:
        """A line under the current step."""
        self._print("      " + text)

    def waiting(self, text: str) -> None:
        """The current wait's state: rewritten in place on a terminal, else every 10 s or when
        it changes."""
        if self.tty:
            self.stream.write("\r\033[K      " + text)
            self.stream.flush()
            self._waiting = text
            return
        now = time.monotonic()
        if text != self._waiting or now - self._last_wait >= 10:
            self.stream.write("      " + text + "\n")
            self.stream.flush()
            self._last_wait = now
        self._waiting = text

    def ok(self, detail: str, seconds: float) -> None:
        """The step succeeded."""
        self._print("      done: %s (%.1f s)" % (detail, seconds))

    def failed(self, error: str) -> None:
        """The step failed."""
        self._print("      FAILED: " + error)

    def summary(self, doc: dict[str, Any]) -> None:
        """The closing summary."""
        lines = ["", "Commissioning of gateway %s (%s, %s, board %s): %s in %.0f s (%d run%s)"
                 % (doc["gateway"], doc["site_name"], "★" * doc["level"], doc["board"],
                    "COMPLETE" if doc["ok"] else "NOT COMPLETE", doc["seconds"], doc["runs"],
                    "" if doc["runs"] == 1 else "s")]
        for s in doc["steps"]:
            lines.append("  %-12s %-8s %6s  %s" % (
                s["step"], s["state"], "%.1fs" % s["seconds"] if s.get("seconds") is not None
                else "", s.get("detail") or s.get("error") or ""))
        if doc.get("devices"):
            lines.append("  devices: " + ", ".join("%s %s" % (d["id"], d["state"])
                                                   for d in doc["devices"]))
        if doc.get("record"):
            lines.append("  signed record: " + doc["record"])
        if doc.get("credential_file"):
            lines.append("  admin credential: %s (0600, never printed)" % doc["credential_file"])
        if not doc["ok"] and doc.get("next"):
            lines.append("  next: " + doc["next"])
        for line in lines:
            self._print(line)
