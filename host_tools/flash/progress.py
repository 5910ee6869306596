"""A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """Call with (done, total) as work advances; finish() ends the line."""

    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        """Report progress."""
        if not self.enabled:
            return
        pct = 100 if total <= 0 else min(100, done * 100 // total)
        step = pct if self.tty else pct // 10 * 10
        if step == self._last:
            return
        self._last = step
        width = 30
        fill = width * pct // 100
        bar = "[" + "#" * fill + "." * (width - fill) + "]"
        text = "%s %s %3d%% %s / %s" % (self.label, bar, pct, _size(done), _size(total))
        if self.tty:
            self.stream.write("\r" + text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self.enabled and self.tty and self._last >= 0:
            self.stream.write("\n")
            self.stream.flush()


def _size(n: int) -> str:
    if n >= 1 << 20:
        return "%.1f MiB" % (n / (1 << 20))
    if n >= 1 << 10:
        return "%.1f KiB" % (n / (1 << 10))
    return "%d B" % n
