"""Portable tests of the self-test result model (run under pytest and MicroPython)."""

from firmware.core import selftest as st
from firmware.core.errors import ConfigError
from tests.core.portable import raises


def _r(check_id: str, verdict: str, reqs: "list | None" = None, reason: str = "") -> st.Result:
    return st.Result(check_id, "t", reqs or ["SR2-H-3"], verdict, ["e"], "fix it", reason)


def test_requirement_levels() -> None:
    assert st.requirement_level("SR2-H-5") == 2
    assert st.requirement_level("SR3-H-4") == 3
    assert st.requirement_level("C8") == 2
    assert st.requirement_level("PSTI-3") == 2
    assert st.requirement_level("R3-8") == 3
    raises(ConfigError, st.requirement_level, "SR9-H-1")
    raises(ConfigError, st.requirement_level, "C12")


def test_applies_by_level() -> None:
    assert st.applies(["SR3-H-4"], 3)
    assert not st.applies(["SR3-H-4"], 2)
    assert st.applies(["SR3-H-4", "UK5"], 2)  # UK5 applies at every level
    raises(ConfigError, st.check_level, 1)
    assert st.check_level(3) == 3


def test_check_ids() -> None:
    for good in ("board.profile", "secrets.plaintext-keys", "tls.policy", "a.b.c2"):
        assert st.valid_check_id(good), good
    for bad in ("board", "Board.profile", "board..x", "board.-x", "b.x y", "", None, 3,
                "x." + "a" * 70):
        assert not st.valid_check_id(bad), bad
    raises(ConfigError, st.Result, "nodot", "t", ["C1"], "pass")


def test_result_validation() -> None:
    raises(ConfigError, st.Result, "a.b", "t", [], "pass")
    raises(ConfigError, st.Result, "a.b", "t", ["NOPE-1"], "pass")
    raises(ConfigError, st.Result, "a.b", "t", ["C1"], "ok")
    exc = raises(ConfigError, st.Result, "a.b", "t", ["C1"], "not_applicable")
    assert "reason" in str(exc)
    r = st.Result("a.b", "t", ["C1"], "not_applicable", reason="no web UI")
    assert r.to_dict()["reason"] == "no web UI"


def test_roundtrip_and_remediation_only_when_not_passing() -> None:
    r = _r("a.b", "fail")
    d = r.to_dict()
    assert d["remediation"] == "fix it" and d["requirements"] == ["SR2-H-3"]
    back = st.Result.from_dict(d)
    assert back.to_dict() == d
    assert _r("a.b", "pass").to_dict()["remediation"] == ""
    raises(ConfigError, st.Result.from_dict, {"id": "a.b", "verdict": "pass"})
    raises(ConfigError, st.Result.from_dict, "x")


def test_exit_codes() -> None:
    assert st.exit_code([_r("a.b", "pass"), _r("a.c", "not_applicable", reason="r")]) == 0
    assert st.exit_code([_r("a.b", "pass"), _r("a.c", "fail")]) == 2
    assert st.exit_code([_r("a.b", "inconclusive"), _r("a.c", "fail")]) == 2
    assert st.exit_code([_r("a.b", "pass"), _r("a.c", "inconclusive")]) == 1
    assert st.exit_code([]) == 1  # nothing ran: the test itself could not run


def test_summary_per_requirement() -> None:
    results = [
        _r("a.one", "pass", ["SR2-H-3", "UK4"]),
        _r("a.two", "fail", ["SR2-H-3"]),
        _r("a.three", "not_applicable", ["SR3-H-4"], reason="level 2"),
        _r("a.four", "inconclusive", ["UK5"]),
    ]
    s = st.summarise(results)
    assert s["counts"] == {"pass": 1, "fail": 1, "not_applicable": 1, "inconclusive": 1}
    assert s["verdict"] == "fail" and s["exit_code"] == 2
    assert s["requirements"] == {"SR2-H-3": "fail", "UK4": "pass",
                                 "SR3-H-4": "not_applicable", "UK5": "inconclusive"}
    only_na = st.summarise([_r("a.b", "not_applicable", reason="r")])
    assert only_na["verdict"] == "pass" and only_na["exit_code"] == 0


def test_sort_key() -> None:
    ids = ["SR2-H-10", "C2", "SR2-H-2", "C10"]
    assert sorted(ids, key=st.sort_key) == ["C2", "C10", "SR2-H-2", "SR2-H-10"]
