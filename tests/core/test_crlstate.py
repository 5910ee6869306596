"""Portable tests of CRL freshness: fresh, ageing at 80 %, stale past next update, hourly repeat."""

from firmware.core.crlstate import AGING, FRESH, STALE, FreshnessAlarm, crl_state


def test_states() -> None:
    assert crl_state(0.0, 1000.0, 500.0) == FRESH
    assert crl_state(0.0, 1000.0, 800.0) == AGING
    assert crl_state(0.0, 1000.0, 1000.0) == AGING
    assert crl_state(0.0, 1000.0, 1000.5) == STALE
    assert crl_state(0.0, 1000.0, -50.0) == FRESH  # clock behind (no RTC yet): newest known


def test_alarm_timeline() -> None:
    alarm = FreshnessAlarm(repeat=3600)
    this, nxt = 0.0, 1000.0
    assert alarm.tick(1, this, nxt, 500, 0) == []
    assert [a[0] for a in alarm.tick(1, this, nxt, 800, 1)] == ["crl.aging"]
    assert alarm.tick(1, this, nxt, 900, 2) == []  # once per list
    stale = alarm.tick(1, this, nxt, 1001, 3)
    assert [(a[0], a[1]) for a in stale] == [("crl.stale", "critical")]
    assert "stay refused" in stale[0][2]
    assert alarm.tick(1, this, nxt, 2000, 1800) == []  # not again before an hour
    assert [a[0] for a in alarm.tick(1, this, nxt, 5000, 3603)] == ["crl.stale"]
    assert [a[0] for a in alarm.tick(1, this, nxt, 5000, 10)] == ["crl.stale"]  # mono went back


def test_a_fresh_list_silences_and_a_new_stale_one_alerts_at_once() -> None:
    alarm = FreshnessAlarm(repeat=3600)
    assert alarm.tick(1, 0.0, 1000.0, 1001, 0)
    assert alarm.tick(2, 4000.0, 9000.0, 5000, 10) == []
    assert [a[0] for a in alarm.tick(2, 4000.0, 9000.0, 9001, 20)] == ["crl.stale"]
    assert [a[0] for a in alarm.tick(3, 0.0, 100.0, 9001, 21)] == ["crl.stale"]  # another list
