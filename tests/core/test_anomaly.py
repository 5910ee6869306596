"""Portable tests of the commanded-vs-actual checker."""

from firmware.core import anomaly


def test_expected_state_of_actions() -> None:
    assert anomaly.expected_state("unlock") == {"locked": False}
    assert anomaly.expected_state("set", {"position": 40}) == {"position": 40}
    assert anomaly.expected_state("set", {}) is None
    assert anomaly.expected_state("dance") is None


def test_obeyed_command_raises_nothing() -> None:
    c = anomaly.CommandedState(grace=5.0)
    assert c.result("lock-1", "unlock", {}, True, {"locked": False}, 0.0) == []
    assert c.reported("lock-1", {"locked": False}, 10.0) == []


def test_ok_result_with_other_actual_state_is_an_anomaly() -> None:
    c = anomaly.CommandedState()
    out = c.result("lock-1", "unlock", {}, True, {"locked": True}, 0.0)
    assert len(out) == 1 and out[0]["kind"] == "result-mismatch"
    assert out[0]["diff"] == {"locked": {"commanded": False, "actual": True}}


def test_failed_command_is_not_an_anomaly() -> None:
    c = anomaly.CommandedState()
    assert c.result("sh-1", "set", {"position": 500}, False, {"position": 0}, 0.0) == []
    assert c.reported("sh-1", {"position": 0}, 100.0) == []


def test_drift_after_grace_raised_once_then_resolved() -> None:
    c = anomaly.CommandedState(grace=5.0)
    c.result("lock-1", "lock", {}, True, {"locked": True}, 0.0)
    assert c.reported("lock-1", {"locked": False}, 2.0) == []      # in-flight heartbeat
    out = c.reported("lock-1", {"locked": False}, 6.0)
    assert [f["kind"] for f in out] == ["drift"]
    assert c.reported("lock-1", {"locked": False}, 16.0) == []     # once per divergence
    out = c.reported("lock-1", {"locked": True}, 26.0)
    assert [f["finding"] for f in out] == ["resolved"] and out[0]["open_for"] == 20.0
    assert c.counts["anomalies"] == 1 and c.counts["resolved"] == 1


def test_missing_or_malformed_state_counts_as_disagreement() -> None:
    c = anomaly.CommandedState(grace=0.0)
    c.result("lock-1", "lock", {}, True, {"locked": True}, 0.0)
    assert c.reported("lock-1", "garbage", 1.0)[0]["diff"]["locked"]["actual"] is None


def test_manual_operation_becomes_the_expectation() -> None:
    c = anomaly.CommandedState(grace=0.0)
    c.result("lock-1", "lock", {}, True, {"locked": True}, 0.0)
    assert c.local("lock-1", {"locked": False}, 1.0) == []
    assert c.reported("lock-1", {"locked": False}, 2.0) == []
    c.forget("lock-1")
    assert c.reported("lock-1", {"locked": True}, 3.0) == []
