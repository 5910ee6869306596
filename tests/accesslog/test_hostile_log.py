"""A log altered with hostile values gets a located verdict, never a crashed verifier (issue 23).

Before: TypeError for a checkpoint base with a string segment number, UnicodeEncodeError for a
lone surrogate in a header's log id, RecursionError for a deeply nested checkpoint field.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from firmware.core.accesslog import framing
from tests.accesslog.helpers import build_log, copy_state, frames_of, report, rewrite, segments
from tests.gateway.helpers import host_cmd


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("hostile-log") / "state"
    build_log(state)
    return state


@pytest.fixture
def state(pristine: Path, tmp_path: Path) -> Path:
    return copy_state(pristine, tmp_path / "state")


def _edit_checkpoint(seg: Path, nth: int, edit: object) -> int:
    """Rewrite the nth checkpoint body of a segment with edit(text) -> text; its offset."""
    frames = frames_of(seg)
    cps = [i for i, f in enumerate(frames) if f[1] == framing.CHECKPOINT]
    i = cps[nth]
    out = [(t, b) for _o, t, b in frames]
    out[i] = (framing.CHECKPOINT, edit(frames[i][2].decode()).encode())  # type: ignore[operator]
    rewrite(seg, out)
    return frames_of(seg)[i][0]


def _located(state: Path, seg: Path, offset: int | None = None) -> dict:
    rep = report(state)
    assert not rep["ok"]
    where = rep["first_problem"]["where"]
    assert seg.name in where, rep["first_problem"]
    if offset is not None:
        assert "offset %d" % offset in where, rep["first_problem"]
    return rep["first_problem"]


def test_checkpoint_base_with_a_string_segment_number(state: Path) -> None:
    seg = segments(state)[1]  # a later checkpoint: an earlier base exists to compare with
    off = _edit_checkpoint(seg, 0, lambda t: t.replace('"seg":0,"seq":1}', '"seg":"0","seq":1}',
                                                       1))
    first = _located(state, seg, off)
    assert "malformed checkpoint" in first["problem"] and "base" in first["problem"]


def test_lone_surrogate_in_the_header_log_id(state: Path) -> None:
    seg = segments(state)[0]
    frames = frames_of(seg)
    hdr = json.loads(frames[0][2])
    hdr["log"] = "\ud800" + hdr["log"]
    rewrite(seg, [(framing.HEADER, json.dumps(hdr).encode())]
            + [(t, b) for _o, t, b in frames[1:]])
    first = _located(state, seg, 0)
    assert "log" in first["problem"]


def test_deeply_nested_checkpoint_field(state: Path) -> None:
    seg = segments(state)[0]
    # 900 levels: json.loads still parses them, the recursive canonical encoder would not
    deep = "[" * 900 + "]" * 900
    off = _edit_checkpoint(seg, 0, lambda t: t.replace('"boot":', '"deep":%s,"boot":' % deep, 1))
    first = _located(state, seg, off)
    assert "nested deeper" in first["problem"]


def test_cli_reports_where_the_log_is_broken(state: Path) -> None:
    seg = segments(state)[0]
    off = _edit_checkpoint(seg, 0, lambda t: t.replace('"boot":', '"deep":%s,"boot":'
                                                       % ("[" * 5000 + "]" * 5000), 1))
    proc = subprocess.run(host_cmd("logs", "verify", str(state)), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "BROKEN at %s offset %d" % (seg.name, off) in proc.stdout + proc.stderr
