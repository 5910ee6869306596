"""Aggregated connection refusals: one record per source and reason per window (CPython).

The first refusal of a (source address, reason) pair in a window is an ``auth.refused`` alert at
once, with its evidence. Repeats are only counted, and ``flush`` turns them into one
``auth.refused`` record with the count when the window closes. Only ``max_keys`` pairs are
tracked per window: refusals from further pairs (a flood from rotating addresses) are folded
into one record for "other sources" with the number of refusals and of distinct addresses. So a
flood costs at most ``2 * max_keys + 1`` records per window, whatever its rate or its addresses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from firmware.core.events import Event

MAX_TRACKED_SOURCES = 65536  # distinct "other" addresses counted per window (memory bound)


class _Key:
    __slots__ = ("repeats", "principal", "first_peer")

    def __init__(self, principal: str, first_peer: str) -> None:
        self.repeats = 0
        self.principal = principal
        self.first_peer = first_peer


class RefusalAggregator:
    """Turns refusals into bounded ``auth.refused`` records (see module docstring)."""

    def __init__(self, emit: Callable[[Event], Any], source: str = "lan", window: float = 60.0,
                 max_keys: int = 32, clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.source = source
        self.window = window
        self.max_keys = max_keys
        self.clock = clock
        self._start = clock()
        self._keys: dict[tuple[str, str], _Key] = {}
        self._other = 0
        self._other_sources: set[str] = set()
        self._other_reasons: dict[str, int] = {}
        self.total = 0
        self.records = 0

    def refuse(self, address: str, peer: str, reason: str, principal: str = "",
               evidence: dict[str, Any] | None = None) -> None:
        """Count one refusal; the first of its kind in the window is emitted at once."""
        self.total += 1
        self.flush()
        key = (address, reason)
        entry = self._keys.get(key)
        if entry is not None:
            entry.repeats += 1
            return
        if len(self._keys) < self.max_keys:
            self._keys[key] = _Key(principal, peer)
            self._record(peer, reason, principal, dict(evidence or {}, count=1))
            return
        self._other += 1
        if len(self._other_sources) < MAX_TRACKED_SOURCES:
            self._other_sources.add(address)
        if reason in self._other_reasons or len(self._other_reasons) < 8:
            self._other_reasons[reason] = self._other_reasons.get(reason, 0) + 1

    def flush(self, force: bool = False) -> None:
        """Close the window when it is over (or now with ``force``): emit the counts."""
        now = self.clock()
        if not force and now - self._start < self.window:
            return
        span = round(now - self._start, 1)
        for (address, reason), entry in self._keys.items():
            if entry.repeats:
                self._record(address, reason, entry.principal,
                             {"count": entry.repeats, "window_s": span, "aggregated": True,
                              "first_peer": entry.first_peer})
        if self._other:
            top = sorted(self._other_reasons.items(), key=lambda kv: -kv[1])
            self._record("*", "refusals from %d other sources" % len(self._other_sources), "",
                         {"count": self._other, "sources": len(self._other_sources),
                          "window_s": span, "aggregated": True,
                          "reasons": dict(top)})
        self._keys.clear()
        self._other = 0
        self._other_sources.clear()
        self._other_reasons.clear()
        self._start = now

    def _record(self, target: str, reason: str, principal: str,
                params: dict[str, Any]) -> None:
        self.records += 1
        self.emit(Event("auth.refused", "alert", self.source, principal=principal,
                        action="connect", target=target, result="refused", reason=reason,
                        params=params))

    def status(self) -> dict[str, Any]:
        """Refusals counted and records written."""
        return {"refusals": self.total, "records": self.records, "window_s": self.window}
