"""Every kind of tampering is detected and located."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from firmware.common.accesslog.files import load_seal
from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, decode
from firmware.core.accesslog.writer import checkpoint_signed_part, checkpoint_unsigned
from firmware.gateway.accesslog.keys import LogKeys
from tests.accesslog.helpers import build_log, copy_state, frames_of, report, rewrite, segments


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("pristine") / "state"
    build_log(state)
    assert len(segments(state)) >= 4
    return state


@pytest.fixture
def state(pristine: Path, tmp_path: Path) -> Path:
    return copy_state(pristine, tmp_path / "state")


def _record_frames(path: Path) -> list[int]:
    return [i for i, f in enumerate(frames_of(path)) if f[1] == framing.RECORD]


def _seq(body: bytes) -> int:
    return int.from_bytes(body[:8], "big")


def test_pristine_is_intact(pristine: Path) -> None:
    rep = report(pristine)
    assert rep["ok"], rep["problems"]
    assert rep["records"] == 60 and rep["unsealed"] == 0


def test_edited_record_located(state: Path) -> None:
    seg = segments(state)[1]
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    i = _record_frames(seg)[1]
    body = bytearray(frames[i][1])
    body[30] ^= 0x40  # ciphertext byte, CRC recomputed: only the chain and tags can tell
    frames[i] = (framing.RECORD, bytes(body))
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    where = rep["first_problem"]["where"]
    assert seg.name in where and "record seq %d" % _seq(body) in where
    assert "edited" in rep["first_problem"]["problem"]


def test_deleted_record_located(state: Path) -> None:
    seg = segments(state)[1]
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    i = _record_frames(seg)[0]
    gone = _seq(frames[i][1])
    del frames[i]
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    assert "records seq %d..%d missing" % (gone, gone) in rep["first_problem"]["problem"]
    assert seg.name in rep["first_problem"]["where"]


def test_inserted_record_located(state: Path) -> None:
    segs = segments(state)
    donor = [(t, b) for _o, t, b in frames_of(segs[0])][_record_frames(segs[0])[0]]
    frames = [(t, b) for _o, t, b in frames_of(segs[2])]
    i = _record_frames(segs[2])[1]
    frames.insert(i, donor)
    rewrite(segs[2], frames)
    rep = report(state)
    assert not rep["ok"]
    assert segs[2].name in rep["first_problem"]["where"]
    assert "record seq %d" % _seq(donor[1]) in rep["first_problem"]["where"]


def test_reordered_records_located(state: Path) -> None:
    seg = segments(state)[2]
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    i, j = _record_frames(seg)[:2]
    frames[i], frames[j] = frames[j], frames[i]
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    assert seg.name in rep["first_problem"]["where"]
    assert "reordered" in rep["first_problem"]["problem"] or "missing" in \
        rep["first_problem"]["problem"]


def test_truncated_log_detected(state: Path) -> None:
    segs = segments(state)
    while not [f for f in frames_of(segs[-1]) if f[1] == framing.CHECKPOINT]:
        segs.pop().unlink()
    seg = segs[-1]
    cps = [f for f in frames_of(seg) if f[1] == framing.CHECKPOINT]
    data = seg.read_bytes()
    seg.write_bytes(data[:cps[-1][0]])  # cut at a frame boundary: looks clean locally
    rep = report(state)
    assert not rep["ok"]
    assert "truncated" in rep["first_problem"]["problem"]
    assert rep["first_problem"]["where"] == "end of log"


def test_removed_last_segment_detected(state: Path) -> None:
    segs = segments(state)
    segs[-1].unlink()
    rep = report(state)
    assert not rep["ok"] and rep["first_problem"]["where"] == "end of log"
    assert "segment %d missing at the end" % (len(segs) - 1) in rep["first_problem"]["problem"]


def test_removed_middle_segment_located(state: Path) -> None:
    segs = segments(state)
    segs[2].unlink()
    rep = report(state)
    assert not rep["ok"]
    assert "segment(s) 2..2 missing" in rep["first_problem"]["problem"]


def test_removed_first_segment_detected(state: Path) -> None:
    segments(state)[0].unlink()
    rep = report(state)
    assert not rep["ok"]
    assert "segment(s) 0..0 missing at the start" in " ".join(
        p["problem"] for p in rep["problems"])


def test_resealed_span_detected(state: Path) -> None:
    # The attacker stole the device (KEK, signing key, current seal key) and re-seals an old
    # span with what they have: the per-record tags and the old epoch's seal fail.
    seg = segments(state)[1]
    keys = LogKeys(state, state / "accesslog")
    keys.load()
    stolen = load_seal(state, state / "accesslog").key
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    hdr = framing.parse_header(frames[0][1])
    h = chain.step(hdr["prev_bytes"], framing.HEADER, frames[0][1])
    edited_seq = None
    for k, (t, b) in enumerate(frames[1:], 1):
        if t == framing.RECORD:
            if edited_seq is None:
                b = b[:25] + bytes([b[25] ^ 1]) + b[26:]
                edited_seq = _seq(b)
            h = chain.step(h, t, b[:-16])
            frames[k] = (t, b[:-16] + chain.record_tag(stolen, h))
        elif t == framing.CHECKPOINT:
            cp = decode(b)
            cp["head"] = chain.hexs(h)
            cp["seal"] = chain.hexs(chain.seal(stolen, canonical(checkpoint_unsigned(cp))))
            cp["sig"] = chain.hexs(keys.sign(checkpoint_signed_part(cp)))
            b = canonical(cp)
            frames[k] = (t, b)
            h = chain.step(h, t, b)
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    assert "record seq %d" % edited_seq in rep["first_problem"]["where"]
    assert any("seal invalid" in p["problem"] for p in rep["problems"])


def test_replaced_checkpoint_located(state: Path) -> None:
    seg = segments(state)[1]
    keys = LogKeys(state, state / "accesslog")
    keys.load()
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    k = next(i for i, f in enumerate(frames) if f[0] == framing.CHECKPOINT)
    cp = decode(frames[k][1])
    cp["ts"] = cp["ts"] - 3600  # backdate, re-signed with the stolen signing key
    cp["sig"] = chain.hexs(keys.sign(checkpoint_signed_part(cp)))
    frames[k] = (framing.CHECKPOINT, canonical(cp))
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    assert "checkpoint epoch %d" % cp["epoch"] in rep["first_problem"]["where"]
    assert "seal invalid" in rep["first_problem"]["problem"]


def test_removed_checkpoint_is_a_missing_epoch(state: Path) -> None:
    seg = segments(state)[1]
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    k = next(i for i, f in enumerate(frames) if f[0] == framing.CHECKPOINT)
    epoch = decode(frames[k][1])["epoch"]
    del frames[k]
    rewrite(seg, frames)
    rep = report(state)
    assert not rep["ok"]
    assert any("epoch(s) %d..%d missing" % (epoch, epoch) in p["problem"]
               for p in rep["problems"]) or "tag" in rep["first_problem"]["problem"]
    assert seg.name in rep["first_problem"]["where"]


def test_bit_flips_anywhere_detected(state: Path, tmp_path: Path) -> None:
    rng = random.Random(6)
    for n in range(40):
        victim = copy_state(state, tmp_path / ("flip%d" % n))
        segs = segments(victim)
        seg = rng.choice(segs)
        data = bytearray(seg.read_bytes())
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        seg.write_bytes(bytes(data))
        rep = report(victim)
        assert not rep["ok"], (seg.name, pos)
        places = " ".join(p["where"] for p in rep["problems"])
        assert seg.name in places or "end of log" in places, (seg.name, pos, rep["problems"])


def test_uploaded_heads_catch_a_replaced_log(state: Path, tmp_path: Path) -> None:
    # Heads the platform holds pin each checkpoint; a log rebuilt from scratch cannot match.
    heads = tmp_path / "heads.jsonl"
    cps = []
    for seg in segments(state):
        cps += [decode(b) for _o, t, b in frames_of(seg) if t == framing.CHECKPOINT]
    heads.write_text("".join(json.dumps(c) + "\n" for c in cps))
    assert report(state, heads_file=heads)["ok"]
    cps[3]["head"] = "00" * 32
    heads.write_text("".join(json.dumps(c) + "\n" for c in cps))
    rep = report(state, heads_file=heads)
    assert not rep["ok"] and "uploaded" in rep["first_problem"]["problem"]
