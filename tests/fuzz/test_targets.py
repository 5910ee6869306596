"""The fuzz harnesses themselves: seeds and known-hostile inputs pass, and an escape is caught."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from firmware.core.errors import ProtocolError
from tests.fuzz import engine

HOSTILE = [b"", b"\x00", b"\x00" + b"[" * 5000, b"\x01" + b"{" * 70000, b"\x02NaN",
           b"\x03" + b"9" * 5000, b"\x00\x00\x00\x05hello", b"\xff" * 64,
           b"\x04" + "\ud800".encode("utf-8", "surrogatepass")]


@pytest.mark.parametrize("target", engine.TARGETS)
def test_seeds_and_hostile_inputs_refused_cleanly(target: str, tmp_path: Path) -> None:
    mod = engine.load_target(target, instrument=False)
    rec = engine.Recorder(tmp_path, target)
    one = rec.wrap(mod.setup(tmp_path))
    pool = mod.seeds(tmp_path)
    assert pool, "a target needs seeds the project's own code made"
    rng = random.Random(23)
    for data in pool + HOSTILE + [engine.mutate(rng, rng.choice(pool), pool)
                                  for _ in range(40)]:
        one(data)
    assert rec.inputs == len(pool) + len(HOSTILE) + 40
    assert not rec.seen, list(rec.seen.values())


def test_recorder_reports_escapes_once_each_and_lets_own_refusals_pass(tmp_path: Path) -> None:
    rec = engine.Recorder(tmp_path, "demo")

    def parser(data: bytes) -> None:
        if data == b"own":
            raise ProtocolError("refused")
        if data.startswith(b"x"):
            raise ValueError("escaped")

    one = rec.wrap(parser)
    for d in (b"own", b"ok", b"x1", b"x2"):
        one(d)
    assert list(rec.seen) == ["ValueError at tests/fuzz/test_targets.py:%d (parser)"
                              % (parser.__code__.co_firstlineno + 4)]
    assert rec.seen[next(iter(rec.seen))]["count"] == 2
    saved = Path(rec.seen[next(iter(rec.seen))]["input"])
    assert saved.read_bytes() == b"x1"


def test_runner_counts_inputs_of_each_target(tmp_path: Path) -> None:
    from tests.fuzz import run

    assert run.main(["usb", "--seconds", "2", "--engine", "hypothesis",
                     "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res[0]["target"] == "usb" and res[0]["inputs"] > 50 and res[0]["escapes"] == []
