"""`mamori trace [--json]`: the matrix as auditors see it, from the TOML and the live registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core.selftest import REQUIREMENTS
from firmware.gateway.selftest.checks import load_checks
from host_tools import trace
from host_tools.cli.main import main

BROKEN = """
schema = "mamori-trace/1"
catalog = ["C8", "R2-1"]

[[requirement]]
id = "C8"
level = 2
title = "Wi-Fi"
selftest_required = true
code = ["firmware/core/boardspec.py::validate", "firmware/core/gone.py"]
tests = ["tests/selftest/test_checks.py::test_wifi_security",
         "tests/selftest/test_checks.py::test_no_such_test"]
checks = ["board.wifi-security", "board.profile"]

[[requirement]]
id = "R2-1"
level = 2
title = "Risk analysis"
code = ["firmware/core/blelink.py::check_pairing"]
tests = []
status = "gap"
gaps = ["tests"]
reason = "fixture radio not written yet"
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["trace", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_matrix_has_every_requirement_in_catalog_order(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "--json")
    doc = json.loads(out)
    matrix = trace.load_matrix()
    problems = trace.validate(matrix, load_checks(), known_levels=REQUIREMENTS)
    assert rc == (2 if problems else 0)
    assert [r["id"] for r in doc["requirements"]] == matrix.catalog
    for r in doc["requirements"]:
        assert {"id", "level", "code", "tests", "checks", "status"} <= set(r)
        assert r["status"] in ("implemented", "gap", "broken")
    assert doc["summary"]["total"] == len(matrix.catalog)
    assert set(doc["checks"]) == set(load_checks())  # the live registry, not a copy
    lan = next(r for r in doc["requirements"] if r["id"] == "SR2-H-2")
    assert "lan.mutual-auth" in lan["checks"] and lan["level"] == 2
    sr1 = next(r for r in doc["requirements"] if r["id"] == "SR2-H-1")
    assert "board.wifi-security" in sr1["derived_checks"]  # C8's check, via covered_by


def test_text_matrix_and_id_filter(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys)
    for rid in trace.load_matrix().catalog:
        assert any(line.startswith(rid + " ") for line in out.splitlines()), rid
    assert "requirements:" in out.splitlines()[-1]
    rc, out, _ = run(capsys, "--id", "C8", "--id", "UK2")
    assert rc == 0
    heads = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == ["C8", "UK2", "2"]
    assert "board.wifi-security" in out
    assert "tests/selftest/test_checks.py::test_wifi_security" in out


def test_broken_references_and_gaps_are_shown(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "m.toml"
    f.write_text(BROKEN)
    rc, out, _ = run(capsys, "--file", str(f))
    assert rc == 2
    assert "C8        ★★   broken" in out
    assert "code path firmware/core/gone.py does not exist" in out
    assert "test_no_such_test is not collected" in out
    assert "board.profile does not list C8" in out
    assert "GAP (tests): fixture radio not written yet" in out
    rc, out, _ = run(capsys, "--file", str(f), "--json")
    doc = json.loads(out)
    assert [r["status"] for r in doc["requirements"]] == ["broken", "gap"]
    assert len(doc["problems"]) == 3 and all(p["id"] == "C8" for p in doc["problems"])
    rc, out, _ = run(capsys, "--file", str(f), "--id", "R2-1")
    assert rc == 0  # the problems are C8's; a declared gap is not a problem


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "--file", str(tmp_path / "none.toml"))
    assert rc == 1 and "no traceability matrix" in err
    rc, _, err = run(capsys, "--id", "SR9-X-1")
    assert rc == 1 and "no requirement SR9-X-1" in err
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN.replace('level = 2\ntitle = "Risk', 'level = 7\ntitle = "Risk'))
    rc, _, err = run(capsys, "--file", str(bad))
    assert rc == 1 and "level must be" in err
