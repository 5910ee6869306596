"""Device liveness tracking (portable, sans-I/O, clock passed in).

States: ``registered`` (never seen) → ``online`` → ``suspect`` → ``offline`` → ``removed``.
A device is *suspect* once it has been silent for ``suspect_factor`` expected intervals and
*offline* after ``offline_factor`` intervals; it is back ``online`` with its next message.
Each transition carries its reason and the detection latency: how long after the deadline that
triggered it the tracker noticed (it bounds how late an operator learns about a silent device).
"""

ONLINE = "online"
SUSPECT = "suspect"
OFFLINE = "offline"
REMOVED = "removed"
REGISTERED = "registered"

# Service level -> (suspect_factor, offline_factor). ★★★ devices get tighter defaults.
DEFAULT_FACTORS = {2: (2.5, 6.0), 3: (1.5, 3.0)}
DEFAULT_REMOVE_AFTER = 7 * 24 * 3600.0


class DeviceLiveness:
    """Liveness record of one device."""

    __slots__ = ("device_id", "transport", "interval", "level", "state", "last_seen",
                 "since", "reason", "learned", "_gaps")

    def __init__(self, device_id: str, transport: str, interval: float, level: int,
                 now: float) -> None:
        self.device_id = device_id
        self.transport = transport
        self.interval = float(interval)
        self.level = level
        self.state = REGISTERED
        self.last_seen = -1.0
        self.since = now
        self.reason = "registered, not seen yet"
        self.learned = False
        self._gaps: list = []

    def to_dict(self) -> dict:
        """Plain-data view for status output."""
        return {
            "id": self.device_id,
            "transport": self.transport,
            "state": self.state,
            "since": self.since,
            "last_seen": self.last_seen if self.last_seen >= 0 else None,
            "interval": self.interval,
            "level": self.level,
            "reason": self.reason,
        }


class LivenessTracker:
    """Tracks every registered device; seen() and tick() return state transitions."""

    def __init__(self, factors: "dict | None" = None,
                 remove_after: float = DEFAULT_REMOVE_AFTER, learn: bool = True) -> None:
        self.factors = factors or DEFAULT_FACTORS
        self.remove_after = remove_after
        self.learn = learn
        self.devices: dict = {}

    def register(self, device_id: str, transport: str, interval: float, level: int,
                 now: float) -> DeviceLiveness:
        """Add (or re-declare) a device with its expected heartbeat interval in seconds."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        dev = self.devices.get(device_id)
        if dev is None or dev.state == REMOVED:
            dev = DeviceLiveness(device_id, transport, interval, level, now)
            self.devices[device_id] = dev
        else:
            dev.interval = float(interval)
            dev.level = level
        return dev

    def remove(self, device_id: str, now: float, reason: str = "removed by operator") -> list:
        """Mark a device removed (it no longer counts)."""
        dev = self.devices.get(device_id)
        if dev is None or dev.state == REMOVED:
            return []
        return [self._move(dev, REMOVED, now, reason, 0.0)]

    def _limits(self, dev: DeviceLiveness) -> "tuple[float, float]":
        suspect, offline = self.factors.get(dev.level, self.factors[2])
        return dev.interval * suspect, dev.interval * offline

    def _move(self, dev: DeviceLiveness, state: str, now: float, reason: str,
              latency: float) -> dict:
        old = dev.state
        dev.state = state
        dev.since = now
        dev.reason = reason
        return {"device": dev.device_id, "transport": dev.transport, "from": old, "to": state,
                "reason": reason, "at": now, "latency": latency}

    def seen(self, device_id: str, now: float) -> list:
        """Record traffic from a device; return transitions (back online)."""
        dev = self.devices.get(device_id)
        if dev is None:
            raise KeyError(device_id)
        out = []
        if dev.last_seen >= 0 and self.learn:
            self._learn(dev, now - dev.last_seen)
        dev.last_seen = now
        if dev.state != ONLINE:
            why = "first heartbeat" if dev.state == REGISTERED else "heard again"
            out.append(self._move(dev, ONLINE, now, why, 0.0))
        return out

    def _learn(self, dev: DeviceLiveness, gap: float) -> None:
        # Learn the real interval from traffic only when it is steady and slower than declared,
        # so a device that heartbeats less often than declared does not flap.
        if gap <= 0:
            return
        dev._gaps.append(gap)
        if len(dev._gaps) > 8:
            dev._gaps.pop(0)
        if len(dev._gaps) == 8:
            gaps = sorted(dev._gaps)
            median = gaps[4]
            if median > dev.interval * 1.2 and gaps[-1] < median * 1.5:
                dev.interval = median
                dev.learned = True

    def tick(self, now: float) -> list:
        """Advance time; return transitions for devices that went silent."""
        out = []
        for dev in self.devices.values():
            if dev.state in (REMOVED,):
                continue
            ref = dev.last_seen if dev.last_seen >= 0 else dev.since
            silent = now - ref
            suspect_after, offline_after = self._limits(dev)
            if dev.state in (ONLINE, REGISTERED) and silent >= suspect_after \
                    and dev.last_seen >= 0:
                out.append(self._move(
                    dev, SUSPECT, now,
                    "silent for %.1f s (expected every %.1f s)" % (silent, dev.interval),
                    silent - suspect_after))
            if dev.state == SUSPECT and silent >= offline_after:
                out.append(self._move(
                    dev, OFFLINE, now,
                    "silent for %.1f s (offline after %.1f s)" % (silent, offline_after),
                    silent - offline_after))
            elif dev.state == REGISTERED and silent >= offline_after:
                out.append(self._move(dev, OFFLINE, now,
                                      "never heard from within %.1f s" % offline_after,
                                      silent - offline_after))
            if dev.state == OFFLINE and silent >= self.remove_after:
                out.append(self._move(dev, REMOVED, now,
                                      "silent for %.0f s: removed" % silent,
                                      silent - self.remove_after))
        return out

    def deadline(self, now: float) -> float:
        """Earliest time at which tick() could produce a transition (for schedulers)."""
        best = now + 3600.0
        for dev in self.devices.values():
            if dev.state in (REMOVED,):
                continue
            ref = dev.last_seen if dev.last_seen >= 0 else dev.since
            suspect_after, offline_after = self._limits(dev)
            for limit in (suspect_after, offline_after, self.remove_after):
                t = ref + limit
                if t > now and t < best:
                    best = t
        return best

    def snapshot(self) -> list:
        """Every device's state as plain data, sorted by id."""
        return [self.devices[k].to_dict() for k in sorted(self.devices)]
