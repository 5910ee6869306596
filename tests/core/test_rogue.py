"""Portable tests of the rogue-device pipeline and the arpwatch-style neighbour table."""

from firmware.core import rogue
from tests.core.portable import FakeClock, raises


def _kinds(records: list) -> list:
    return [r["kind"] for r in records]


def test_first_observation_is_reported_with_evidence() -> None:
    p = rogue.RoguePipeline()
    out = p.observe("zigbee", "00:11:22:33:44:55:66:77", 0.0, "join outside the window",
                    identity="00:11:22:33:44:55:66:77", evidence={"nwk": "0x1234"})
    assert _kinds(out) == ["rogue"]
    assert out[0]["path"] == "zigbee" and out[0]["evidence"] == {"nwk": "0x1234"}
    assert out[0]["reason"] == "join outside the window"


def test_unknown_path_refused() -> None:
    p = rogue.RoguePipeline()
    raises(ValueError, p.observe, "carrier-pigeon", "x", 0.0)
    raises(ValueError, rogue.RoguePipeline, 0.0)


def test_flood_is_rate_limited_and_summarised() -> None:
    clock = FakeClock(0.0)
    p = rogue.RoguePipeline(rate=0.1, burst=3, block_after=10_000, summary_every=10.0)
    reports = []
    for _ in range(1000):
        reports += [r for r in p.observe("lan", "10.0.0.9", clock.advance(0.011), "bad")
                    if r["kind"] == "rogue"]
    assert len(reports) == 3 + 1      # the burst, then one token per 10 s (11 s elapsed)
    assert p.flush(clock()) == []     # the 4th report carried the count; next summary in 10 s
    summaries = p.flush(clock.advance(10.0))
    assert len(summaries) == 1 and summaries[0]["kind"] == "suppressed"
    told = reports[3]["suppressed_before"] + summaries[0]["count"]
    assert told == 1000 - len(reports)  # every observation is either reported or counted
    assert "more suppressed" in summaries[0]["reason"]
    assert p.flush(clock.advance(1.0)) == []     # nothing new held back


def test_sources_do_not_share_a_bucket_but_share_the_global_one() -> None:
    p = rogue.RoguePipeline(rate=0.1, burst=1, global_rate=0.001, global_burst=5,
                            block_after=1000)
    out = []
    for i in range(20):
        out += p.observe("lan", "10.0.0.%d" % i, 1.0, "bad")
    assert len(out) == 5                                   # global cap
    s = p.flush(100.0, max_summaries=10)
    assert sum(r["count"] for r in s) == 15
    assert s[-1]["source"] == "*" and s[-1]["sources"] == 5


def test_repeat_offender_blocked_then_expires_and_escalates() -> None:
    clock = FakeClock(0.0)
    p = rogue.RoguePipeline(block_after=5, window=60.0, block_for=100.0)
    kinds = []
    for _ in range(5):
        kinds += _kinds(p.observe("lan", "10.0.0.9", clock.advance(1.0), "bad"))
    assert kinds.count("blocked") == 1
    assert p.blocked("lan", "10.0.0.9", clock()) is not None
    assert p.blocked("lan", "10.0.0.8", clock()) is None    # other peers unaffected
    assert p.observe("lan", "10.0.0.9", clock.advance(1.0), "bad") == []  # silent while blocked
    assert p.summary(clock())["blocked"][0]["source"] == "10.0.0.9"
    out = p.flush(clock.advance(99.0))
    assert "unblocked" in _kinds(out)
    assert [r for r in out if r["kind"] == "unblocked"][0]["attempts"] == 2
    assert p.blocked("lan", "10.0.0.9", clock()) is None
    for _ in range(5):
        kinds = _kinds(p.observe("lan", "10.0.0.9", clock.advance(1.0), "bad"))
    blocked = p.sources["lan|10.0.0.9"]
    assert "blocked" in kinds and blocked.blocked_until - clock() == 200.0  # doubled


def test_slow_offences_outside_window_do_not_block() -> None:
    clock = FakeClock(0.0)
    p = rogue.RoguePipeline(block_after=3, window=10.0)
    for _ in range(10):
        assert "blocked" not in _kinds(p.observe("usb", "1-1", clock.advance(6.0), "refused"))


def test_never_block_list_is_honoured() -> None:
    p = rogue.RoguePipeline(block_after=2, never_block=["10.0.0.1"])
    for i in range(5):
        assert "blocked" not in _kinds(p.observe("lan", "10.0.0.1", float(i), "bad"))


def test_memory_bounded_under_many_sources() -> None:
    p = rogue.RoguePipeline(max_sources=50, block_after=1000)
    for i in range(500):
        p.observe("zigbee", "ieee-%d" % i, float(i), "unknown")
    assert len(p.sources) <= 50


def test_neighbour_table_arpwatch_vocabulary() -> None:
    t = rogue.NeighbourTable()
    known = {"10.0.0.2"}

    def is_known(ip: str, mac: str) -> bool:
        return ip in known

    a, b, c = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    out = t.update([("10.0.0.2", a), ("10.0.0.66", b)], 0.0, is_known)
    assert [(f["finding"], f["ip"]) for f in out] == [("new station", "10.0.0.66")]
    assert t.update([("10.0.0.2", a), ("10.0.0.66", b)], 1.0, is_known) == []
    out = t.update([("10.0.0.2", c.upper())], 2.0, is_known)
    assert out[0]["finding"] == "changed ethernet address" and out[0]["old_mac"] == a
    assert out[0]["known"] is True
    assert t.update([("10.0.0.2", a)], 3.0, is_known)[0]["finding"] == "flip flop"
    assert t.update([("10.0.0.2", b)], 4.0, is_known)[0]["finding"] == "changed ethernet address"
    assert t.update([("10.0.0.2", c)], 5.0, is_known)[0]["finding"] == \
        "reused old ethernet address"


def test_neighbour_grace_lets_a_device_authenticate_first() -> None:
    t = rogue.NeighbourTable(grace=15.0)
    known: set = set()

    def is_known(ip: str, mac: str) -> bool:
        return ip in known

    mac = "02:00:00:00:00:01"
    assert t.update([("10.0.0.5", mac), ("10.0.0.6", mac)], 0.0, is_known) == []
    known.add("10.0.0.5")                     # its session came up within the grace
    out = t.update([("10.0.0.5", mac), ("10.0.0.6", mac)], 15.0, is_known)
    assert [(f["finding"], f["ip"]) for f in out] == [("new station", "10.0.0.6")]
    assert t.update([("10.0.0.6", mac)], 30.0, is_known) == []     # reported once
