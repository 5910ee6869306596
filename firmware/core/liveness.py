"""Device liveness tracking (portable, sans-I/O, clock passed in).

States: ``registered`` (never seen) → ``online`` → ``suspect`` → ``offline`` → ``removed``.
A device is *suspect* once it has been silent for ``suspect_factor`` expected intervals and
*offline* after ``offline_factor`` intervals; it is back ``online`` with its next message.
Each transition carries its reason and the detection latency: how long after the deadline that
triggered it the tracker noticed (it bounds how late an operator learns about a silent device).

Radio / scanner watchdog: a transport's radio (Zigbee coordinator, BLE scanner) registers with
``register_radio`` and calls ``radio_seen`` on its own heartbeat. When that heartbeat is
``radio_factor`` intervals overdue *and* no device of the transport was heard since, the radio is
``dead``: one radio transition (queued in ``radio_moves`` for the monitor, see
``pop_radio_moves``) replaces the N device suspect/offline transitions (the devices still change
state, with the reason "radio ... is dead"). A radio whose heartbeat stops while its devices
still talk is ``silent`` (the watchdog itself is broken). Devices that go silent while their radio
is alive are reported one by one: the devices are dead, not the radio.

``ProbeScheduler`` plans active probes for devices that only answer when asked, with jittered
exponential back-off while they do not answer.
"""

ONLINE = "online"
SUSPECT = "suspect"
OFFLINE = "offline"
REMOVED = "removed"
REGISTERED = "registered"
RADIO_ALIVE = "alive"
RADIO_DEAD = "dead"
RADIO_SILENT = "silent"

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
        self.radios: dict = {}
        self.radio_moves: list = []

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
        """Advance time; return transitions for devices that went silent.

        Transitions of devices whose radio is dead are not returned: they are listed in the
        radio's transition (``radio_moves``) instead.
        """
        dead = self._tick_radios(now)
        out = []
        for dev in self.devices.values():
            if dev.state in (REMOVED,):
                continue
            moves = self._tick_device(dev, now)
            radio = dead.get(dev.transport)
            if radio is None:
                out.extend(moves)
                continue
            for m in moves:  # collapsed into the radio's alert; the state still changes
                if m["to"] in (SUSPECT, OFFLINE):
                    dev.reason = m["reason"] = m["reason"] + "; radio %s is dead" % radio["name"]
                    radio["suppressed"] = radio.get("suppressed", 0) + 1
                else:
                    out.append(m)
        return out

    def _tick_device(self, dev: DeviceLiveness, now: float) -> list:
        out = []
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

    # -- radio / scanner watchdog -----------------------------------------------------------
    def register_radio(self, name: str, interval: float, now: float,
                       factor: float = 3.0) -> None:
        """Declare the radio of transport `name` with its own heartbeat interval in seconds."""
        if interval <= 0 or factor <= 1:
            raise ValueError("radio interval must be positive and factor above 1")
        self.radios[name] = {"name": name, "interval": float(interval), "factor": factor,
                             "last_seen": now, "state": RADIO_ALIVE, "since": now,
                             "reason": "registered", "latency": 0.0, "devices": [],
                             "suppressed": 0}

    def radio_seen(self, name: str, now: float) -> None:
        """The radio's own heartbeat (it answered its driver, the scanner produced a result)."""
        r = self.radios.get(name)
        if r is None:
            raise KeyError(name)
        r["last_seen"] = now
        if r["state"] != RADIO_ALIVE:
            self._radio_move(r, RADIO_ALIVE, now, "radio heartbeat resumed", 0.0, [])

    def _radio_move(self, r: dict, state: str, now: float, reason: str, latency: float,
                    devices: list) -> None:
        move = {"radio": r["name"], "from": r["state"], "to": state, "reason": reason,
                "at": now, "latency": latency, "devices": devices}
        r["state"] = state
        r["since"] = now
        r["reason"] = reason
        r["latency"] = latency
        r["devices"] = devices
        r["suppressed"] = 0
        self.radio_moves.append(move)
        if len(self.radio_moves) > 100:
            self.radio_moves.pop(0)

    def _tick_radios(self, now: float) -> dict:
        dead = {}
        for r in self.radios.values():
            limit = r["interval"] * r["factor"]
            silent = now - r["last_seen"]
            if silent < limit:
                if r["state"] == RADIO_SILENT:
                    self._radio_move(r, RADIO_ALIVE, now, "radio heartbeat resumed", 0.0, [])
                continue
            devs = [d for d in self.devices.values()
                    if d.transport == r["name"] and d.state != REMOVED]
            # The radio stopped within its last interval: traffic after that proves it alive.
            heard = [d for d in devs if d.last_seen > r["last_seen"] + r["interval"]]
            if r["state"] == RADIO_DEAD:
                if heard:  # traffic flows again although the heartbeat did not resume
                    self._radio_move(r, RADIO_SILENT, now,
                                     "radio heartbeat missing but its devices are heard", 0.0, [])
                else:
                    dead[r["name"]] = r
                continue
            if heard:
                if r["state"] != RADIO_SILENT:
                    self._radio_move(r, RADIO_SILENT, now,
                                     "radio heartbeat missing for %.1f s but %d of %d devices "
                                     "are heard" % (silent, len(heard), len(devs)),
                                     silent - limit, [])
                continue
            self._radio_move(r, RADIO_DEAD, now,
                             "radio heartbeat stopped %.1f s ago and all %d devices went "
                             "silent with it" % (silent, len(devs)),
                             silent - limit, sorted(d.device_id for d in devs))
            dead[r["name"]] = r
        return dead

    def pop_radio_moves(self) -> list:
        """Radio transitions since the last call (the monitor publishes them)."""
        out = self.radio_moves
        self.radio_moves = []
        return out

    def radio_snapshot(self) -> list:
        """Every radio's watchdog state as plain data."""
        out = []
        for name in sorted(self.radios):
            r = self.radios[name]
            out.append({"radio": name, "state": r["state"], "since": r["since"],
                        "last_seen": r["last_seen"], "interval": r["interval"],
                        "reason": r["reason"], "latency": r["latency"],
                        "devices": list(r["devices"]),
                        "suppressed_device_alerts": r["suppressed"]})
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


class ProbeScheduler:
    """Active probing for devices that only answer when asked, with jittered back-off.

    A probe is due every ``interval`` seconds (±``jitter``, so probes do not synchronise);
    each unanswered probe doubles the delay, up to ``max_factor`` intervals. ``rand`` returns
    a float in [0, 1) (passed in: the core has no randomness of its own).
    """

    def __init__(self, rand: "object", jitter: float = 0.2, max_factor: float = 8.0) -> None:
        if not 0 <= jitter < 1 or max_factor < 1:
            raise ValueError("jitter must be in [0, 1) and max_factor at least 1")
        self.rand = rand
        self.jitter = jitter
        self.max_factor = max_factor
        self.entries: dict = {}

    def _jittered(self, delay: float) -> float:
        r = self.rand()  # type: ignore[operator]
        return delay * (1.0 - self.jitter + 2.0 * self.jitter * r)

    def add(self, device_id: str, interval: float, now: float) -> None:
        """Start probing a device every `interval` seconds (first probe within one jitter)."""
        if interval <= 0:
            raise ValueError("probe interval must be positive")
        self.entries[device_id] = {"interval": float(interval), "misses": 0,
                                   "next": now + interval * self.jitter * self.rand(),  # type: ignore[operator]
                                   "in_flight": False, "delay": float(interval)}

    def remove(self, device_id: str) -> None:
        """Stop probing a device."""
        self.entries.pop(device_id, None)

    def due(self, now: float) -> list:
        """Devices to probe now (each is then in flight until answered() or missed())."""
        out = []
        for dev_id in sorted(self.entries):
            e = self.entries[dev_id]
            if not e["in_flight"] and e["next"] <= now:
                e["in_flight"] = True
                out.append(dev_id)
        return out

    def answered(self, device_id: str, now: float) -> None:
        """The device answered: back to its normal interval."""
        e = self.entries.get(device_id)
        if e is None:
            return
        e["misses"] = 0
        e["in_flight"] = False
        e["delay"] = e["interval"]
        e["next"] = now + self._jittered(e["interval"])

    def missed(self, device_id: str, now: float) -> float:
        """The probe went unanswered: back off; return the delay chosen before the next one."""
        e = self.entries.get(device_id)
        if e is None:
            return 0.0
        e["misses"] += 1
        e["in_flight"] = False
        delay = e["interval"] * (2 ** e["misses"])
        cap = e["interval"] * self.max_factor
        if delay > cap:
            delay = cap
        e["delay"] = delay
        e["next"] = now + self._jittered(delay)
        return e["next"] - now

    def next_due(self, now: float) -> float:
        """Earliest time a probe falls due (now + 3600 when nothing is scheduled)."""
        best = now + 3600.0
        for e in self.entries.values():
            if not e["in_flight"] and e["next"] < best:
                best = e["next"]
        return best
