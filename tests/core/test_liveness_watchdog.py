"""Portable tests of the radio watchdog and the active probe schedule (liveness)."""

from firmware.core import liveness
from tests.core.portable import FakeClock, raises


def _zigbee(n: int = 3) -> "tuple":
    clock = FakeClock(0.0)
    t = liveness.LivenessTracker()
    t.register_radio("zigbee", 5.0, clock())
    for i in range(n):
        t.register("zb-%d" % i, "zigbee", 10.0, 2, clock())
        t.seen("zb-%d" % i, clock())
    t.register("lock-1", "ip", 10.0, 2, clock())
    t.seen("lock-1", clock())
    return t, clock


def test_dead_radio_is_one_alert_not_n_device_alerts() -> None:
    t, clock = _zigbee(3)
    moves = []
    for _ in range(70):
        clock.advance(1.0)
        t.seen("lock-1", clock())
        moves += t.tick(clock())
    assert [m for m in moves if m["transport"] == "zigbee"] == []
    radio = t.pop_radio_moves()
    assert [(m["radio"], m["to"]) for m in radio] == [("zigbee", "dead")]
    assert radio[0]["devices"] == ["zb-0", "zb-1", "zb-2"]
    assert radio[0]["latency"] == 0.0                 # noticed at the 15 s deadline
    states = {d["id"]: d["state"] for d in t.snapshot()}
    assert states["zb-0"] == "offline" and states["lock-1"] == "online"
    assert "radio zigbee is dead" in t.devices["zb-0"].reason
    t.radio_seen("zigbee", clock.advance(1.0))
    assert [m["to"] for m in t.pop_radio_moves()] == ["alive"]
    assert [m["to"] for m in t.seen("zb-0", clock())] == ["online"]


def test_devices_dead_radio_alive_gives_device_alerts() -> None:
    t, clock = _zigbee(2)
    moves = []
    for _ in range(70):
        clock.advance(1.0)
        t.radio_seen("zigbee", clock())
        moves += t.tick(clock())
    assert sorted((m["device"], m["to"]) for m in moves) == [
        ("lock-1", "offline"), ("lock-1", "suspect"), ("zb-0", "offline"), ("zb-0", "suspect"),
        ("zb-1", "offline"), ("zb-1", "suspect")]
    assert t.pop_radio_moves() == []


def test_radio_heartbeat_missing_but_traffic_flows_is_silent_not_dead() -> None:
    t, clock = _zigbee(2)
    moves = []
    for _ in range(30):
        clock.advance(1.0)
        t.seen("zb-0", clock())
        t.seen("zb-1", clock())
        moves += t.tick(clock())
    assert [m for m in moves if m["transport"] == "zigbee"] == []
    assert [m["to"] for m in t.pop_radio_moves()] == ["silent"]
    assert t.radio_snapshot()[0]["state"] == "silent"
    t.radio_seen("zigbee", clock.advance(1.0))
    assert [m["to"] for m in t.pop_radio_moves()] == ["alive"]


def test_radio_api_errors() -> None:
    t = liveness.LivenessTracker()
    raises(KeyError, t.radio_seen, "ble", 0.0)
    raises(ValueError, t.register_radio, "ble", 0.0, 0.0)


def test_probe_schedule_jitter_and_backoff() -> None:
    rolls = [0.5]
    p = liveness.ProbeScheduler(lambda: rolls[0], jitter=0.2, max_factor=8.0)
    p.add("plug-1", 10.0, 0.0)
    assert p.due(0.0) == []
    assert p.due(1.0) == ["plug-1"]               # first probe within one jitter (0.2*10*0.5)
    assert p.due(1.0) == []                        # in flight
    delays = [p.missed("plug-1", 1.0)]
    for _ in range(4):
        t = p.next_due(0.0)
        assert p.due(t) == ["plug-1"]
        delays.append(p.missed("plug-1", t))
    assert delays == [20.0, 40.0, 80.0, 80.0, 80.0]    # doubling, capped at 8 intervals
    rolls[0] = 0.0
    p.answered("plug-1", 100.0)
    assert p.next_due(100.0) == 108.0              # back to the interval, jittered -20 %
    rolls[0] = 0.999
    p.answered("plug-1", 200.0)
    assert 211.9 < p.next_due(200.0) < 212.0       # +20 %
    p.remove("plug-1")
    assert p.due(1e9) == []
    raises(ValueError, liveness.ProbeScheduler, lambda: 0.0, 1.5)
