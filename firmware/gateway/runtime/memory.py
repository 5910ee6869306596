"""Giving memory back after a burst of connections (CPython, glibc; a no-op elsewhere).

glibc keeps freed heap memory for reuse: after a flood of 2,000 connections the gateway's RSS
stays where the flood took it. ``Trimmer`` counts connections opened and closed and, once a
burst of them is over (nothing pending, at least ``burst`` closed since the last trim, at most
one trim per ``every`` seconds), calls ``malloc_trim(0)``, which returns the free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Any

_trim: Callable[[int], int] | None = None
_looked = False


def malloc_trim() -> bool:
    """Return free heap pages to the system; False when the C library has no malloc_trim."""
    global _trim, _looked
    if not _looked:
        _looked = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            fn = libc.malloc_trim
            fn.argtypes = [ctypes.c_size_t]
            fn.restype = ctypes.c_int
            _trim = fn
        except (OSError, AttributeError):
            _trim = None
    if _trim is None:
        return False
    _trim(0)
    return True


class Trimmer:
    """Calls malloc_trim after a burst of connections has ended (see module docstring)."""

    def __init__(self, burst: int = 256, every: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.every = every
        self.clock = clock
        self.open = 0
        self.closed_since = 0
        self.trims = 0
        self._last = -every

    def opened(self) -> None:
        """A connection was accepted."""
        self.open += 1

    def closed(self) -> None:
        """A connection ended."""
        self.open -= 1
        self.closed_since += 1

    def maybe_trim(self, quiet: bool = True) -> bool:
        """Trim when a burst is over (``quiet``: nothing is half-way through a handshake)."""
        now = self.clock()
        if not quiet or self.closed_since < self.burst or now - self._last < self.every:
            return False
        self._last = now
        self.closed_since = 0
        if malloc_trim():
            self.trims += 1
            return True
        return False

    def status(self) -> dict[str, Any]:
        """Connections open and trims done."""
        return {"connections": self.open, "trims": self.trims}
