"""Pre-authentication bookkeeping and refusal aggregation, with a hand-driven clock."""

from __future__ import annotations

from typing import Any

from firmware.core.events import Event
from firmware.gateway.lan.preauth import EVICTED, FULL, PER_SOURCE, PreAuthGuard, Ticket
from firmware.gateway.lan.refusals import RefusalAggregator


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_per_source_cap_refuses_before_any_work_and_frees_on_release() -> None:
    g = PreAuthGuard(per_source=2, total=10, clock=Clock())
    a, b = g.admit("10.0.0.5", lambda: None), g.admit("10.0.0.5", lambda: None)
    assert isinstance(a, Ticket) and isinstance(b, Ticket)
    assert g.admit("10.0.0.5", lambda: None) == PER_SOURCE
    assert isinstance(g.admit("10.0.0.6", lambda: None), Ticket)  # other sources unaffected
    g.release(a, authenticated=True)
    assert isinstance(g.admit("10.0.0.5", lambda: None), Ticket)
    assert g.status()["authenticated"] == 1 and g.status()["refused_per_source"] == 1


def test_full_evicts_the_oldest_stalled_connection_never_a_young_one() -> None:
    clock = Clock()
    g = PreAuthGuard(per_source=4, total=3, evict_after=2.0, clock=clock)
    cancelled: list[str] = []
    for i in range(3):  # slow-loris from rotating addresses
        g.admit("127.1.0.%d" % i, lambda i=i: cancelled.append("127.1.0.%d" % i))
    assert g.admit("127.9.9.9", lambda: None) == FULL  # all young: refused, nobody evicted
    assert cancelled == []
    clock.t += 2.5
    t = g.admit("127.0.0.1", lambda: None)  # a device arrives: the oldest loris goes
    assert isinstance(t, Ticket) and cancelled == ["127.1.0.0"]
    assert g.status()["evicted"] == 1 and g.status()["unauthenticated"] == 3
    assert EVICTED


def test_deadline_and_handshake_rate() -> None:
    clock = Clock()
    g = PreAuthGuard(deadline=5.0, rate=1.0, burst=1.0, clock=clock)
    t = g.admit("10.0.0.1", lambda: None)
    assert isinstance(t, Ticket) and g.left(t) == 5.0
    clock.t += 4.0
    assert g.left(t) == 1.0
    clock.t += 2.0
    assert g.left(t) == 0.0


def test_refusals_one_record_per_source_and_reason_per_window_counts_add_up() -> None:
    clock = Clock()
    out: list[Event] = []

    def emit(ev: Event) -> Any:
        out.append(ev)

    agg = RefusalAggregator(emit, window=60.0, max_keys=4, clock=clock)
    for i in range(50):
        agg.refuse("127.2.0.1", "127.2.0.1:%d" % (4000 + i), "TLS handshake failed")
    assert len(out) == 1 and out[0].params["count"] == 1  # the first at once
    assert out[0].severity == "alert" and out[0].kind == "auth.refused"
    for i in range(1000):  # a flood from rotating addresses
        agg.refuse("127.3.%d.%d" % (i // 200, i % 200), "x:1", "TLS handshake failed")
    assert len(out) == 4  # only max_keys pairs are tracked
    clock.t += 61
    agg.flush()
    assert sum(e.params["count"] for e in out) == 1050
    other = [e for e in out if e.target == "*"]
    assert len(other) == 1 and other[0].params["sources"] == 997
    before = len(out)
    agg.flush()
    assert len(out) == before  # nothing new: no record


def test_default_evicts_the_oldest_at_once() -> None:
    g = PreAuthGuard(total=2, clock=Clock())
    gone: list[int] = []
    g.admit("127.1.0.1", lambda: gone.append(1))
    g.admit("127.1.0.2", lambda: gone.append(2))
    assert isinstance(g.admit("127.0.0.1", lambda: None), Ticket) and gone == [1]


def test_full_table_evicts_the_oldest_silent_connection_first() -> None:
    g = PreAuthGuard(total=3, clock=Clock())
    gone: list[str] = []
    spoke = {"device": True}
    for i, name in enumerate(("device", "loris-1", "loris-2")):  # the device is the oldest
        g.admit("127.1.0.%d" % i, lambda n=name: gone.append(n),
                lambda n=name: spoke.get(n, False))
    assert isinstance(g.admit("127.1.1.1", lambda: gone.append("loris-3")), Ticket)
    assert gone == ["loris-1"]
    spoke["loris-2"] = True  # speaking later counts too (probed at eviction time)...
    g.admit("127.1.1.2", lambda: gone.append("loris-4"))
    assert gone == ["loris-1", "loris-3"]
    spoke["loris-2"] = False  # ...and is latched: a probe is asked until it says yes, then never
    g.admit("127.1.1.3", lambda: gone.append("loris-5"))
    assert gone == ["loris-1", "loris-3", "loris-4"]
    assert g.status()["evicted"] == 3 and g.status()["unauthenticated"] == 3


def test_when_every_connection_spoke_the_oldest_goes() -> None:
    g = PreAuthGuard(total=2, clock=Clock())
    gone: list[int] = []
    g.admit("127.1.0.1", lambda: gone.append(1), lambda: True)
    g.admit("127.1.0.2", lambda: gone.append(2), lambda: True)
    assert isinstance(g.admit("127.0.0.1", lambda: None, lambda: True), Ticket) and gone == [1]
