"""How fresh a revocation list is, and when to say so (portable: times are Unix seconds).

A CRL is *fresh* until 80 % of its lifetime (``this_update`` → ``next_update``), then *aging*
(one warning ``crl.aging``: the platform's refresh did not arrive in time), then *stale* past
``next_update``. A stale CRL is not fatal: the serials on it stay refused and every other valid
device keeps working (a house must not lose its locks and alarms because a list is old), but a
critical ``crl.stale`` alert repeats every ``repeat`` seconds (an hour) until a fresh CRL is
installed. A clock behind ``this_update`` (a board without RTC before its first time sync)
counts as fresh: the list is the newest the gateway has.
"""

FRESH = "fresh"
AGING = "aging"
STALE = "stale"
STATES = (FRESH, AGING, STALE)
AGING_FRACTION = 0.8
STALE_REPEAT = 3600.0


def crl_state(this_update: float, next_update: float, now: float,
              aging: float = AGING_FRACTION) -> str:
    """``fresh``, ``aging`` or ``stale`` for a CRL valid from this_update to next_update."""
    if now > next_update:
        return STALE
    life = next_update - this_update
    if life > 0 and now >= this_update + aging * life:
        return AGING
    return FRESH


class FreshnessAlarm:
    """Decides which freshness alerts to raise as time passes (one instance per gateway)."""

    def __init__(self, repeat: float = STALE_REPEAT, aging: float = AGING_FRACTION) -> None:
        self.repeat = repeat
        self.aging = aging
        self._aging_told = -1  # CRL number whose aging was announced
        self._stale_at = -1.0  # monotonic time of the last stale alert (-1: none yet)
        self._stale_number = -1

    def tick(self, number: int, this_update: float, next_update: float, now: float,
             mono: float) -> list:
        """Alerts due now: a list of (kind, severity, reason) tuples (usually empty).

        `now` is wall-clock time (judged against the CRL's dates), `mono` a monotonic clock
        (spacing the repeats, so a clock jump cannot flood or silence them).
        """
        state = crl_state(this_update, next_update, now, self.aging)
        out = []
        if state == STALE:
            due = (self._stale_at < 0 or self._stale_number != number
                   or mono - self._stale_at >= self.repeat or mono < self._stale_at)
            if due:
                self._stale_at = mono
                self._stale_number = number
                out.append(("crl.stale", "critical",
                            "CRL %d expired %d s ago: devices on it stay refused, install a "
                            "fresh CRL (`mamori platform revocations --resign` or "
                            "`mamori-gateway crl install`)" % (number, int(now - next_update))))
            return out
        self._stale_at = -1.0
        self._stale_number = -1
        if state == AGING and self._aging_told != number:
            self._aging_told = number
            out.append(("crl.aging", "warning",
                        "CRL %d has passed %d %% of its lifetime; expires in %d s"
                        % (number, int(self.aging * 100), int(next_update - now))))
        return out
