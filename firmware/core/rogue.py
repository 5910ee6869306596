"""Rogue-device pipeline (portable, sans-I/O, clock passed in).

Every admission path (LAN mutual authentication, BLE, Zigbee joins, the LAN neighbour table,
USB insertions) feeds *observations* ``(path, source, reason, identity, evidence, now)`` into one
``RoguePipeline``. It returns records for the gateway to publish:

- ``rogue``: a rogue-device report with its evidence (first ones from a source, then at most
  ``rate`` per second per source and ``global_rate`` overall: token buckets);
- ``suppressed``: "N more suppressed" summaries for what the buckets held back;
- ``blocked`` / ``unblocked``: a source with ``block_after`` observations within ``window``
  seconds is blocked for ``block_for`` seconds (doubling on each repeat, up to ``block_max``).
  Admission paths ask ``blocked(path, source, now)`` before doing any work for a peer.

``NeighbourTable`` turns periodic snapshots of the LAN neighbour (ARP) table into arpwatch's
findings: ``new station``, ``changed ethernet address``, ``flip flop``, ``reused old ethernet
address``.
"""

PATHS = ("lan", "ble", "zigbee", "arp", "usb")

NEW_STATION = "new station"
CHANGED = "changed ethernet address"
FLIP_FLOP = "flip flop"
REUSED = "reused old ethernet address"


class TokenBucket:
    """Classic token bucket: `burst` tokens, refilled at `rate` tokens per second."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class _Source:
    __slots__ = ("path", "source", "bucket", "count", "suppressed", "first", "last",
                 "offences", "blocked_until", "blocks", "attempts", "last_summary", "reason")

    def __init__(self, path: str, source: str, bucket: TokenBucket, now: float) -> None:
        self.path = path
        self.source = source
        self.bucket = bucket
        self.count = 0
        self.suppressed = 0
        self.first = now
        self.last = now
        self.offences: list = []
        self.blocked_until = 0.0
        self.blocks = 0
        self.attempts = 0
        self.last_summary = now
        self.reason = ""


class RoguePipeline:
    """One pipeline for every admission path: rate-limited reports and temporary blocks."""

    def __init__(self, rate: float = 0.1, burst: float = 3.0, global_rate: float = 2.0,
                 global_burst: float = 20.0, block_after: int = 10, window: float = 60.0,
                 block_for: float = 300.0, block_max: float = 86400.0,
                 summary_every: float = 10.0, max_sources: int = 4096,
                 never_block: "tuple | list" = ()) -> None:
        if rate <= 0 or burst < 1 or block_after < 1 or window <= 0 or block_for <= 0:
            raise ValueError("rate, burst, block_after, window and block_for must be positive")
        self.rate = rate
        self.burst = burst
        self.block_after = block_after
        self.window = window
        self.block_for = block_for
        self.block_max = block_max
        self.summary_every = summary_every
        self.max_sources = max_sources
        self.never_block = list(never_block)
        self.global_bucket = TokenBucket(global_rate, global_burst, 0.0)
        self.sources: dict = {}
        self.counts = {"observed": 0, "reported": 0, "suppressed": 0, "blocks": 0,
                       "blocked_attempts": 0}
        self.by_path: dict = {}
        self._global_started = False

    def _get(self, path: str, source: str, now: float) -> _Source:
        key = path + "|" + source
        src = self.sources.get(key)
        if src is None:
            if len(self.sources) >= self.max_sources:
                self._evict(now)
            src = _Source(path, source, TokenBucket(self.rate, self.burst, now), now)
            self.sources[key] = src
        return src

    def _evict(self, now: float) -> None:
        # Drop the idlest unblocked source with nothing pending (bounded memory under floods).
        best = None
        for key, src in self.sources.items():
            if src.blocked_until > now or src.suppressed:
                continue
            if best is None or src.last < self.sources[best].last:
                best = key
        if best is None:  # everything is blocked or pending: drop the idlest anyway
            for key, src in self.sources.items():
                if best is None or src.last < self.sources[best].last:
                    best = key
        if best is not None:
            del self.sources[best]

    def observe(self, path: str, source: str, now: float, reason: str = "",
                identity: str = "", evidence: "dict | None" = None) -> list:
        """Feed one observation; return the records to publish (possibly none)."""
        if path not in PATHS:
            raise ValueError("unknown admission path: " + str(path))
        if not self._global_started:
            self.global_bucket.stamp = now
            self._global_started = True
        src = self._get(path, str(source), now)
        src.count += 1
        src.last = now
        src.reason = reason
        self.counts["observed"] += 1
        self.by_path[path] = self.by_path.get(path, 0) + 1
        if src.blocked_until > now:
            src.attempts += 1
            src.suppressed += 1
            self.counts["suppressed"] += 1
            self.counts["blocked_attempts"] += 1
            return []
        out = []
        if src.bucket.take(now) and self.global_bucket.take(now):
            rec = self._record("rogue", src, now, reason)
            rec["identity"] = identity
            rec["evidence"] = evidence or {}
            rec["count"] = src.count
            if src.suppressed:
                rec["suppressed_before"] = src.suppressed
                src.suppressed = 0
                src.last_summary = now
            self.counts["reported"] += 1
            out.append(rec)
        else:
            src.suppressed += 1
            self.counts["suppressed"] += 1
        src.offences.append(now)
        while src.offences and src.offences[0] <= now - self.window:
            src.offences.pop(0)
        if len(src.offences) >= self.block_after and src.source not in self.never_block:
            out.append(self._block(src, now))
        return out

    def _block(self, src: _Source, now: float) -> dict:
        src.blocks += 1
        span = self.block_for * (2 ** (src.blocks - 1))
        if span > self.block_max:
            span = self.block_max
        src.blocked_until = now + span
        src.offences = []
        src.attempts = 0
        self.counts["blocks"] += 1
        rec = self._record("blocked", src, now,
                           "%d observations within %.0f s: blocked for %.0f s"
                           % (self.block_after, self.window, span))
        rec["until"] = src.blocked_until
        rec["duration"] = span
        rec["blocks"] = src.blocks
        return rec

    def _record(self, kind: str, src: _Source, now: float, reason: str) -> dict:
        return {"kind": kind, "path": src.path, "source": src.source, "reason": reason,
                "at": now}

    def blocked(self, path: str, source: str, now: float) -> "str | None":
        """Admission check: a refusal reason while `source` is blocked (the try is counted)."""
        src = self.sources.get(path + "|" + str(source))
        if src is None or src.blocked_until <= now:
            return None
        src.attempts += 1
        src.suppressed += 1
        src.last = now
        self.counts["suppressed"] += 1
        self.counts["blocked_attempts"] += 1
        return "blocked for %.0f s more after repeated failures" % (src.blocked_until - now)

    def flush(self, now: float, max_summaries: int = 20) -> list:
        """Call periodically: block expiries and "N more suppressed" summaries."""
        out = []
        pending = []
        for src in self.sources.values():
            if src.blocked_until and src.blocked_until <= now:
                src.blocked_until = 0.0
                rec = self._record("unblocked", src, now, "block expired")
                rec["attempts"] = src.attempts
                out.append(rec)
            if src.suppressed and now - src.last_summary >= self.summary_every:
                pending.append(src)
        pending.sort(key=lambda s: -s.suppressed)
        rest = 0
        rest_sources = 0
        for i, src in enumerate(pending):
            if i < max_summaries:
                rec = self._record("suppressed", src, now, "%d more suppressed" % src.suppressed)
                rec["count"] = src.suppressed
                rec["blocked"] = src.blocked_until > now
                out.append(rec)
            else:
                rest += src.suppressed
                rest_sources += 1
            src.suppressed = 0
            src.last_summary = now
        if rest:
            out.append({"kind": "suppressed", "path": "*", "source": "*", "at": now,
                        "count": rest, "sources": rest_sources, "blocked": False,
                        "reason": "%d more suppressed from %d other sources"
                        % (rest, rest_sources)})
        return out

    def blocked_list(self, now: float) -> list:
        """Currently blocked sources, soonest expiry first."""
        out = []
        for src in self.sources.values():
            if src.blocked_until > now:
                out.append({"path": src.path, "source": src.source, "until": src.blocked_until,
                            "remaining_s": round(src.blocked_until - now, 1),
                            "attempts": src.attempts, "blocks": src.blocks,
                            "reason": src.reason})
        out.sort(key=lambda d: d["until"])
        return out

    def summary(self, now: float) -> dict:
        """Counters for the status view."""
        return {"counts": dict(self.counts), "by_path": dict(self.by_path),
                "sources": len(self.sources), "blocked": self.blocked_list(now)}


class NeighbourTable:
    """arpwatch-style tracking of (IP, MAC) pairs seen in periodic neighbour-table snapshots.

    A station not ``known`` is reported as ``new station`` only if it is still unknown ``grace``
    seconds after it appeared (a device's ARP traffic precedes its authenticated session).
    """

    def __init__(self, grace: float = 0.0, history: int = 4, max_stations: int = 4096) -> None:
        self.grace = grace
        self.history = history
        self.max_stations = max_stations
        self.stations: dict = {}
        self.pending: dict = {}

    def update(self, entries: list, now: float, known: "object") -> list:
        """Feed one snapshot [(ip, mac), ...]; known(ip, mac) -> bool. Return findings."""
        out = []
        for ip, mac in entries:
            mac = mac.lower()
            st = self.stations.get(ip)
            if st is None:
                if len(self.stations) >= self.max_stations:
                    continue
                self.stations[ip] = {"macs": [mac], "first": now, "last": now}
                if not known(ip, mac):  # type: ignore[operator]
                    self.pending[ip] = now
                continue
            st["last"] = now
            macs = st["macs"]
            if mac == macs[0]:
                continue
            if len(macs) > 1 and mac == macs[1]:
                kind = FLIP_FLOP
            elif mac in macs:
                kind = REUSED
            else:
                kind = CHANGED
            out.append({"finding": kind, "ip": ip, "mac": mac, "old_mac": macs[0],
                        "known": bool(known(ip, mac)), "at": now})  # type: ignore[operator]
            if mac in macs:
                macs.remove(mac)
            macs.insert(0, mac)
            while len(macs) > self.history:
                macs.pop()
        for ip in list(self.pending):
            st = self.stations[ip]
            if known(ip, st["macs"][0]):  # type: ignore[operator]
                del self.pending[ip]
            elif now - self.pending[ip] >= self.grace:
                del self.pending[ip]
                out.append({"finding": NEW_STATION, "ip": ip, "mac": st["macs"][0],
                            "old_mac": "", "known": False, "at": now})
        return out
