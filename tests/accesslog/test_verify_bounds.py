"""A forged epoch number cannot make the verifier spin: it is reported, not derived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core.accesslog import framing
from firmware.core.accesslog.encoding import canonical, decode
from tests.accesslog.helpers import build_log, frames_of, report, rewrite, segments

HUGE = 1 << 62


@pytest.fixture
def state(tmp_path: Path) -> Path:
    st = tmp_path / "state"
    build_log(st, records=30)
    return st


@pytest.mark.timeout(60)
def test_huge_epoch_in_segment_header_is_reported_not_derived(state: Path) -> None:
    seg = segments(state)[1]
    frames = frames_of(seg)
    hdr = json.loads(frames[0][2])
    hdr["epoch"] = HUGE
    rewrite(seg, [(framing.HEADER, canonical(hdr))] + [(t, b) for _o, t, b in frames[1:]])
    rep = report(state)
    assert not rep["ok"]
    assert seg.name in rep["first_problem"]["where"]


@pytest.mark.timeout(60)
def test_huge_epoch_in_checkpoint_is_reported_not_derived(state: Path) -> None:
    seg = segments(state)[0]
    frames = frames_of(seg)
    out = []
    done = False
    for _o, t, b in frames:
        if t == framing.CHECKPOINT and not done:
            cp = decode(b)
            cp["epoch"] = HUGE
            b = canonical(cp)
            done = True
        out.append((t, b))
    assert done
    rewrite(seg, out)
    rep = report(state)
    assert not rep["ok"]
    assert "epoch" in rep["first_problem"]["problem"]
