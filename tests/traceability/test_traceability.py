"""Every requirement ID is traceable to code, tests and (where the catalog asks) self-test checks.

The matrix is ``requirements.toml`` beside this file; ``host_tools.trace`` does the checking
(by reading sources with ``ast``: no feature module is imported, no test is run), so this stays
fast. Gaps are allowed only when declared with a reason; they are printed at the end of the run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from firmware.core.selftest import REQUIREMENTS
from firmware.gateway.selftest.checks import load_checks
from host_tools import trace

MATRIX = trace.load_matrix()
# IDs the issues use beyond the self-test model's catalog (the WAN issue's platform requirement).
EXTRA_IDS = {"SR2-SP-5"}
# The catalog's "Home gateway requirements" table has a self-test column for every row.
SELFTEST_COLUMN = {"SR2-H-%d" % i for i in range(1, 7)} | {"SR3-H-%d" % i for i in range(1, 10)}


def test_every_reference_is_real_and_complete() -> None:
    problems = trace.validate(MATRIX, load_checks(), known_levels=REQUIREMENTS)
    assert not problems, "traceability problems:\n" + "\n".join(str(p) for p in problems)


def test_catalog_copy_matches_the_selftest_model() -> None:
    assert set(MATRIX.catalog) == set(REQUIREMENTS) | EXTRA_IDS
    assert len(MATRIX.catalog) == len(set(MATRIX.catalog))
    assert MATRIX.order == MATRIX.catalog, "entries follow the catalog's order"


def test_selftest_column_ids_are_marked_required() -> None:
    unmarked = sorted(r for r in SELFTEST_COLUMN if not MATRIX.entries[r].selftest_required)
    assert not unmarked, "catalog lists a self-test check for: " + ", ".join(unmarked)


def test_gaps_are_declared_with_reasons_and_printed(capsys: pytest.CaptureFixture[str]) -> None:
    gaps = trace.gaps(MATRIX)
    for e in gaps:
        assert e.gaps and e.reason.strip(), e.id
    with capsys.disabled():
        print("\ntraceability gap allowlist: "
              + ("; ".join("%s (%s)" % (e.id, ",".join(e.gaps)) for e in gaps) or "none"))


# ------------------------------------------------------------------ the checker can fail

def _fake_repo(root: Path) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "mod.py").write_text(
        "X = 1\n\nclass Thing:\n    def method(self):\n        pass\n\ndef helper():\n    pass\n")
    (root / "tests" / "area").mkdir(parents=True)
    (root / "tests" / "area" / "test_area.py").write_text(
        "def test_ok():\n    pass\n\ndef helper():\n    pass\n\n"
        "class TestGroup:\n    def test_inner(self):\n        pass\n")
    (root / "tests" / "area" / "notatest.py").write_text("def test_hidden():\n    pass\n")


def _matrix(rows: list[dict[str, object]], catalog: list[str] | None = None) -> trace.Matrix:
    ids = [str(r["id"]) for r in rows]
    return trace.parse_matrix({"schema": trace.SCHEMA, "catalog": catalog or ids,
                               "requirement": rows})


def _row(rid: str, **kw: object) -> dict[str, object]:
    row: dict[str, object] = {"id": rid, "level": 2, "title": "t",
                              "code": ["pkg/mod.py::Thing.method"],
                              "tests": ["tests/area/test_area.py::test_ok"]}
    row.update(kw)
    return row


def _messages(m: trace.Matrix, registry: dict[str, list[str]], root: Path) -> list[str]:
    return [str(p) for p in trace.validate(m, registry, root)]


def test_a_clean_fake_matrix_passes(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    m = _matrix([_row("R-1", checks=["a.check"], selftest_required=True,
                      tests=["tests/area/test_area.py::test_ok[param-1]",
                             "tests/area/test_area.py::TestGroup::test_inner"],
                      code=["pkg/mod.py", "pkg/mod.py::X", "pkg/mod.py::helper"])])
    assert _messages(m, {"a.check": ["R-1"]}, tmp_path) == []


@pytest.mark.parametrize("code,expect", [
    ("pkg/missing.py", "does not exist"),
    ("pkg/mod.py::nothing", "not defined"),
    ("pkg/mod.py::Thing.nomethod", "not defined"),
    ("pkg/mod.py::helper.inner", "not defined"),
    ("../outside.py", "relative to the repository"),
    ("/etc/passwd", "relative to the repository"),
])
def test_missing_code_path_or_symbol_fails(tmp_path: Path, code: str, expect: str) -> None:
    _fake_repo(tmp_path)
    msgs = _messages(_matrix([_row("R-1", code=[code])]), {}, tmp_path)
    assert len(msgs) == 1 and expect in msgs[0], msgs


@pytest.mark.parametrize("nodeid,expect", [
    ("tests/area/test_area.py::test_missing", "not collected"),
    ("tests/area/test_area.py::helper", "not collected"),
    ("tests/area/test_area.py::TestGroup::test_missing", "not collected"),
    ("tests/area/test_gone.py::test_ok", "does not exist"),
    ("tests/area/notatest.py::test_hidden", "does not collect"),
    ("tests/area/test_area.py", "not a node ID"),
    ("pkg/mod.py::helper", "outside tests/"),
])
def test_unknown_test_fails(tmp_path: Path, nodeid: str, expect: str) -> None:
    _fake_repo(tmp_path)
    msgs = _messages(_matrix([_row("R-1", tests=[nodeid])]), {}, tmp_path)
    assert len(msgs) == 1 and expect in msgs[0], msgs


def test_check_problems_fail(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    m = _matrix([_row("R-1", checks=["a.unknown", "b.other"]), _row("R-2")])
    registry = {"b.other": ["R-9"], "c.claims": ["R-2"]}
    msgs = _messages(m, registry, tmp_path)
    assert any("a.unknown is not registered" in s for s in msgs), msgs
    assert any("b.other does not list R-1" in s for s in msgs), msgs
    assert any(s.startswith("R-2:") and "c.claims lists R-2" in s for s in msgs), msgs
    assert len(msgs) == 3, msgs


def test_required_check_missing_fails_unless_declared(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    m = _matrix([_row("R-1", selftest_required=True)])
    assert any("no self-test check" in s for s in _messages(m, {}, tmp_path))
    declared = _matrix([_row("R-1", selftest_required=True, status="gap", gaps=["checks"],
                             reason="being written")])
    assert _messages(declared, {}, tmp_path) == []
    assert [e.id for e in trace.gaps(declared)] == ["R-1"]


def test_no_code_or_no_test_fails(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    msgs = _messages(_matrix([_row("R-1", code=[]), _row("R-2", tests=[])]), {}, tmp_path)
    assert any(s.startswith("R-1: no code") for s in msgs), msgs
    assert any(s.startswith("R-2: no test") for s in msgs), msgs


def test_gap_declarations_cannot_rot(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    stale = _matrix([_row("R-1", status="gap", gaps=["tests"], reason="old")])
    assert any("no longer missing" in s for s in _messages(stale, {}, tmp_path))
    no_reason = _matrix([_row("R-1", tests=[], status="gap", gaps=["tests"])])
    assert any("needs a reason" in s for s in _messages(no_reason, {}, tmp_path))
    no_status = _matrix([_row("R-1", tests=[], gaps=["tests"], reason="r")])
    assert any("status is not" in s for s in _messages(no_status, {}, tmp_path))


def test_catalog_and_entries_must_agree(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    m = _matrix([_row("R-1"), _row("R-3", covered_by=["R-7"])], catalog=["R-1", "R-2"])
    msgs = _messages(m, {}, tmp_path)
    assert any(s.startswith("R-2:") and "no [[requirement]]" in s for s in msgs), msgs
    assert any(s.startswith("R-3:") and "not in the catalog" in s for s in msgs), msgs
    assert any("covered_by names R-7" in s for s in msgs), msgs
    lv = trace.validate(_matrix([_row("R-1")]), {}, tmp_path, known_levels={"R-1": 3})
    assert any("self-test model says 3" in str(p) for p in lv)


def test_composite_takes_checks_from_its_parts(tmp_path: Path) -> None:
    _fake_repo(tmp_path)
    m = _matrix([_row("R-1", checks=["a.check"]),
                 {"id": "R-ALL", "level": 2, "title": "all", "covered_by": ["R-1"],
                  "selftest_required": True}])
    assert _messages(m, {"a.check": ["R-1"]}, tmp_path) == []
    assert trace.effective_checks(m.entries["R-ALL"], m) == ["a.check"]
    bare = _matrix([{"id": "R-ALL", "level": 2, "title": "all"}])
    assert len(_messages(bare, {}, tmp_path)) == 2  # no code, no test


@pytest.mark.parametrize("bad", [
    {"schema": "other", "catalog": ["R-1"], "requirement": []},
    {"schema": trace.SCHEMA, "catalog": [], "requirement": []},
    {"schema": trace.SCHEMA, "catalog": ["R-1"], "requirement": [{"level": 2, "title": "t"}]},
    {"schema": trace.SCHEMA, "catalog": ["R-1"],
     "requirement": [{"id": "R-1", "level": 5, "title": "t"}]},
    {"schema": trace.SCHEMA, "catalog": ["R-1"],
     "requirement": [{"id": "R-1", "level": 2, "title": "t", "code": "a.py"}]},
    {"schema": trace.SCHEMA, "catalog": ["R-1"],
     "requirement": [{"id": "R-1", "level": 2, "title": "t", "gaps": ["docs"]}]},
    {"schema": trace.SCHEMA, "catalog": ["R-1"],
     "requirement": [{"id": "R-1", "level": 2, "title": "t", "colour": "red"}]},
])
def test_malformed_matrix_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        trace.parse_matrix(bad)


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no traceability matrix"):
        trace.load_matrix(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("schema = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        trace.load_matrix(bad)
