"""Portable tests of liveness tracking with a controllable clock."""

from firmware.core import liveness
from tests.core.portable import FakeClock, raises


def _tracker_with_device(level: int = 2) -> "tuple":
    clock = FakeClock(0.0)
    t = liveness.LivenessTracker()
    t.register("lock-1", "ip", 10.0, level, clock())
    return t, clock


def test_first_heartbeat_goes_online() -> None:
    t, clock = _tracker_with_device()
    moves = t.seen("lock-1", clock.advance(1))
    assert [m["to"] for m in moves] == ["online"]
    assert t.seen("lock-1", clock.advance(10)) == []


def test_silent_device_goes_suspect_then_offline_at_documented_times() -> None:
    t, clock = _tracker_with_device()
    t.seen("lock-1", clock())
    assert t.tick(clock.advance(24.9)) == []          # < 2.5 intervals
    moves = t.tick(clock.advance(0.1))                # = 25 s
    assert [m["to"] for m in moves] == ["suspect"]
    assert moves[0]["latency"] == 0.0
    assert t.tick(clock.advance(34.0)) == []          # 59 s < 60 s
    moves = t.tick(clock.advance(3.0))                # 62 s: 2 s after the deadline
    assert [m["to"] for m in moves] == ["offline"]
    assert abs(moves[0]["latency"] - 2.0) < 1e-9
    back = t.seen("lock-1", clock.advance(1))
    assert [(m["from"], m["to"]) for m in back] == [("offline", "online")]


def test_level3_devices_have_tighter_defaults() -> None:
    t, clock = _tracker_with_device(level=3)
    t.seen("lock-1", clock())
    assert [m["to"] for m in t.tick(clock.advance(15.0))] == ["suspect"]
    assert [m["to"] for m in t.tick(clock.advance(15.0))] == ["offline"]


def test_never_seen_device_goes_offline_not_suspect() -> None:
    t, clock = _tracker_with_device()
    assert t.tick(clock.advance(30)) == []
    moves = t.tick(clock.advance(30))
    assert [m["to"] for m in moves] == ["offline"]


def test_unknown_device_and_bad_interval_refused() -> None:
    t, clock = _tracker_with_device()
    raises(KeyError, t.seen, "nobody", clock())
    raises(ValueError, t.register, "x", "ip", 0, 2, clock())


def test_removed_device_no_longer_ticks() -> None:
    t, clock = _tracker_with_device()
    t.seen("lock-1", clock())
    assert [m["to"] for m in t.remove("lock-1", clock())] == ["removed"]
    assert t.tick(clock.advance(1000)) == []


def test_interval_learned_from_steady_slower_traffic() -> None:
    t, clock = _tracker_with_device()
    for _ in range(9):
        t.seen("lock-1", clock.advance(30.0))
    assert t.devices["lock-1"].interval == 30.0
    assert t.tick(clock.advance(70.0)) == []


def test_deadline_points_at_next_transition() -> None:
    t, clock = _tracker_with_device()
    t.seen("lock-1", clock())
    assert t.deadline(clock()) == 25.0
