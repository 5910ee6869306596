"""Per-device limits on the events a device's own messages cause (CPython).

A device may report manual operations or answer commands, but one that does so faster than a
person or a command could (a compromised device flooding the log, the status view and the
platform) is cut back: per (device, message kind) a token bucket lets ``burst`` events through,
then ``rate`` per second. Past it the messages are only counted: the first one held back in a
window raises one ``device.flood`` alert, and when the window closes one ``device.flood`` record
gives the count. So a flood costs at most ``burst + rate * window + 2`` records per window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from firmware.core.events import Event
from firmware.core.rogue import TokenBucket


class _Held:
    __slots__ = ("count", "since")

    def __init__(self, since: float) -> None:
        self.count = 0
        self.since = since


class DeviceEventLimiter:
    """Token buckets per (device, kind); held-back events become one alert and one count."""

    def __init__(self, emit: Callable[[Event], Any], source: str, rate: float = 0.5,
                 burst: float = 10.0, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.emit = emit
        self.source = source
        self.rate = rate
        self.burst = burst
        self.window = window
        self.clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._held: dict[tuple[str, str], _Held] = {}
        self.suppressed = 0

    def allow(self, device_id: str, kind: str) -> bool:
        """True when the device's event of this kind may be recorded now."""
        now = self.clock()
        self.flush()
        key = (device_id, kind)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        if bucket.take(now):
            return True
        self.suppressed += 1
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(now)
            self.emit(Event("device.flood", "alert", self.source, principal=device_id,
                            action=kind, target=device_id, result="throttled",
                            reason="device %s sends %s messages faster than %g per second "
                                   "(burst %d): further ones are counted, not recorded, for "
                                   "%.0f s" % (device_id, kind, self.rate, self.burst,
                                               self.window)))
        held.count += 1
        return False

    def flush(self, force: bool = False) -> None:
        """Emit the count of every window that is over (every one with ``force``)."""
        now = self.clock()
        for key, held in list(self._held.items()):
            if force or now - held.since >= self.window:
                del self._held[key]
                self.emit(Event("device.flood", "notice", self.source, principal=key[0],
                                action=key[1], target=key[0], result="suppressed",
                                reason="%d %s message(s) counted, not recorded"
                                       % (held.count, key[1]),
                                params={"count": held.count, "aggregated": True,
                                        "window_s": round(now - held.since, 1)}))

    def status(self) -> dict[str, Any]:
        """Events held back so far and the limits."""
        return {"suppressed": self.suppressed, "rate": self.rate, "burst": self.burst,
                "window_s": self.window}
