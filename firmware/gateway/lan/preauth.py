"""Limits on unauthenticated LAN connections, checked before any TLS work (CPython).

- **per source**: at most ``per_source`` connections from one address may be unauthenticated at
  once; more are refused at once (no TLS, no hello);
- **in total**: at most ``total`` unauthenticated connections; a new one evicts the *oldest
  silent* one (a slow-loris connection that never says anything, from any number of rotating
  addresses), else the oldest: a device sends its TLS ClientHello as soon as it connects, so
  even a burst of hundreds of idle connects arriving just after it cannot push it out;
  With ``evict_after`` > 0 only a connection that old is evicted and a new one is refused
  instead (it retries); the default 0 favours a device arriving during a slow-loris burst
  over devices of a crowd reconnecting at once (those retry with back-off);
- **deadline**: TLS handshake and hello together must finish within ``deadline`` seconds;
- **handshake rate**: TLS handshakes start at most ``rate`` per second (burst ``burst``), so the
  CPU they take is bounded and established sessions' traffic is served first; a connection
  waits for its turn within its deadline.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
from collections.abc import Callable
from typing import Any

from firmware.core.rogue import TokenBucket

PER_SOURCE = "too many unauthenticated connections from this address"
EVICTED = "unauthenticated connections at capacity: oldest dropped"
FULL = "unauthenticated connections at capacity"
NO_TURN = "no TLS handshake slot within the pre-authentication deadline"


# How many of the oldest connections an eviction looks at for a silent one (bounded work per
# connect even when every pending connection has said something).
SILENT_SCAN = 32


class Ticket:
    """One unauthenticated connection held by the guard."""

    __slots__ = ("id", "source", "started", "cancel", "evicted", "_probe", "_spoke")

    def __init__(self, tid: int, source: str, started: float, cancel: Callable[[], Any],
                 probe: Callable[[], bool] | None = None) -> None:
        self.id = tid
        self.source = source
        self.started = started
        self.cancel = cancel
        self.evicted = False
        self._probe = probe
        self._spoke = False

    def spoke(self) -> bool:
        """Whether the peer has sent anything yet (latched: once seen, always true)."""
        if not self._spoke and self._probe is not None and self._probe():
            self._spoke = True
            self._probe = None
        return self._spoke


class PreAuthGuard:
    """Bookkeeping of unauthenticated connections (see module docstring)."""

    def __init__(self, per_source: int = 4, total: int = 256, deadline: float = 10.0,
                 rate: float = 200.0, burst: float = 400.0, evict_after: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if per_source < 1 or total < 1 or deadline <= 0 or rate <= 0 or burst < 1:
            raise ValueError("pre-authentication limits must be positive")
        self.per_source = per_source
        self.total = total
        self.deadline = deadline
        self.rate = rate
        self.evict_after = evict_after
        self.clock = clock
        self._bucket = TokenBucket(rate, burst, clock())
        self._pending: collections.OrderedDict[int, Ticket] = collections.OrderedDict()
        self._by_source: dict[str, int] = {}
        self._ids = itertools.count(1)
        self.counts = {"admitted": 0, "refused_per_source": 0, "refused_full": 0,
                       "evicted": 0, "timed_out": 0, "authenticated": 0}

    def admit(self, source: str, cancel: Callable[[], Any],
              probe: Callable[[], bool] | None = None) -> Ticket | str:
        """A ticket for a new connection, or the reason it is refused (before any TLS work).

        ``probe`` tells whether the peer has sent bytes yet (silent connections go first).
        """
        if self._by_source.get(source, 0) >= self.per_source:
            self.counts["refused_per_source"] += 1
            return PER_SOURCE
        now = self.clock()
        while len(self._pending) >= self.total:
            victim = self._victim()
            if self.evict_after > 0 and now - victim.started < self.evict_after:
                self.counts["refused_full"] += 1
                return FULL
            del self._pending[victim.id]
            self._forget(victim)
            victim.evicted = True
            self.counts["evicted"] += 1
            victim.cancel()
        t = Ticket(next(self._ids), source, now, cancel, probe)
        t.spoke()  # a device's ClientHello is usually there already: latch it now
        self._pending[t.id] = t
        self._by_source[source] = self._by_source.get(source, 0) + 1
        self.counts["admitted"] += 1
        return t

    def _victim(self) -> Ticket:
        """The oldest connection that has said nothing, else the oldest."""
        oldest = None
        for t in itertools.islice(self._pending.values(), SILENT_SCAN):
            if oldest is None:
                oldest = t
            if not t.spoke():
                return t
        assert oldest is not None  # only called when at capacity
        return oldest

    def _forget(self, t: Ticket) -> None:
        n = self._by_source.get(t.source, 0) - 1
        if n > 0:
            self._by_source[t.source] = n
        else:
            self._by_source.pop(t.source, None)

    def release(self, t: Ticket, authenticated: bool = False) -> None:
        """The connection authenticated or ended: it no longer counts."""
        if self._pending.pop(t.id, None) is not None:
            self._forget(t)
        if authenticated:
            self.counts["authenticated"] += 1

    def timed_out(self) -> None:
        """Count a connection that missed its deadline (handshake or hello)."""
        self.counts["timed_out"] += 1

    def left(self, t: Ticket) -> float:
        """Seconds left before the connection's deadline."""
        return max(0.0, t.started + self.deadline - self.clock())

    async def turn(self, t: Ticket) -> bool:
        """Wait for a handshake slot within the deadline; False when none came in time."""
        while not self._bucket.take(self.clock()):
            if self.left(t) <= 0:
                self.counts["timed_out"] += 1
                return False
            await asyncio.sleep(min(self.left(t), 1.0 / self.rate))
        return True

    def status(self) -> dict[str, Any]:
        """Counts, and how many connections are unauthenticated now."""
        oldest = next(iter(self._pending.values()), None)
        return {"unauthenticated": len(self._pending), "sources": len(self._by_source),
                "oldest_s": round(self.clock() - oldest.started, 1) if oldest else 0.0,
                "limits": {"per_source": self.per_source, "total": self.total,
                           "deadline_s": self.deadline, "handshakes_per_s": self.rate},
                **self.counts}
