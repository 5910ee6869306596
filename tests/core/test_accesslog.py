"""Portable tests of the access log's chain, seals and verifier (pytest and MicroPython)."""

import hashlib

from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, decode, make_record, minimise
from firmware.core.accesslog.verify import Verifier
from firmware.core.accesslog.writer import ChainWriter, record_aad, resume
from firmware.core.errors import IntegrityError
from tests.core.portable import raises

KEY0 = bytes(range(32))
PUB = b"P" * 32


def _sign(msg: bytes) -> bytes:
    # A stand-in signature (the real one is Ed25519 on CPython): hash of pub and message.
    return hashlib.sha256(PUB + msg).digest()


def _sig_ok(pub: bytes, msg: bytes, sig: bytes) -> bool:
    return hashlib.sha256(pub + msg).digest() == sig


def _build(records: int = 6, every: int = 3) -> tuple:
    """A one-segment log: genesis, then records with a checkpoint every `every` records."""
    w = ChainWriter("log1", chain.SealKey(0, KEY0), chain.genesis("log1"), 1)
    data = w.header(0)
    frame, _cp = w.checkpoint({"ts": 1.0, "base": {"seg": 0}, "pub": chain.hexs(PUB)}, _sign)
    data += frame
    for i in range(records):
        plain = canonical(make_record({"kind": "k", "target": "d%d" % i}, w.next_seq, 2.0, 1.0,
                                      "b"))
        data += w.record(b"N" * 12, plain + record_aad("log1", w.next_seq)[:16])
        if w.unsealed == every:
            data += w.checkpoint({"ts": 3.0, "base": {"seg": 0}}, _sign)[0]
    return data, w


def _verify(data: bytes, **kw: object) -> dict:
    v = Verifier(key0=KEY0, sig_verify=_sig_ok, **kw)  # type: ignore[arg-type]
    v.feed("seg-00000000.log", 0, data, True)
    return v.finish()


def test_canonical_is_sorted_and_compact() -> None:
    assert canonical({"b": 1, "a": [True, None, "x"]}) == b'{"a":[true,null,"x"],"b":1}'
    assert decode(canonical({"z": {"y": 1}})) == {"z": {"y": 1}}


def test_minimise_redacts_secrets_and_cuts() -> None:
    out = minimise({"password": "hunter2", "Api_Token": "t", "n": "x" * 1000, "ok": 3})
    assert out["password"] == "[redacted]" and out["Api_Token"] == "[redacted]"
    assert len(out["n"]) < 300 and out["ok"] == 3
    rec = make_record({"kind": "k", "extra": 1, "params": {"pin": "1234"}}, 5, 9.0, 1.0, "b")
    assert rec["seq"] == 5 and rec["params"] == {"extra": 1, "pin": "[redacted]"}


def test_seal_key_evolves_and_forgets() -> None:
    k = chain.SealKey(0, KEY0)
    k.evolve()
    k.evolve()
    assert k.epoch == 2 and k.key == chain.derive(KEY0, 2) and k.key != KEY0
    k.wipe()
    assert k.key == bytes(32)


def test_intact_log_verifies() -> None:
    data, w = _build()
    rep = _verify(data, key_epoch=w.seal_key.epoch)
    assert rep["ok"], rep["problems"]
    assert rep["records"] == 6 and rep["last_epoch"] == 2 and rep["unsealed"] == 0


def test_resume_matches_writer_state() -> None:
    data, w = _build(records=7)
    frames, _end, trouble = framing.scan(data)
    st = resume(frames)
    assert trouble is None and st["h"] == w.h and st["next_seq"] == 8
    assert st["last_epoch"] == 2 and st["unsealed"] == 1


def test_edited_record_is_located() -> None:
    data, _w = _build()
    frames = framing.scan(data)[0]
    off, _t, body = frames[3]  # record seq 2
    bad = bytearray(body)
    bad[25] ^= 1
    new = data[:off] + framing.encode_frame(framing.RECORD, bytes(bad)) + data[off + len(
        body) + 9:]
    rep = _verify(new)
    assert not rep["ok"]
    assert "record seq 2" in rep["first_problem"]["where"]


def test_unsealed_log_does_not_pass() -> None:
    w = ChainWriter("log1", chain.SealKey(0, KEY0), chain.genesis("log1"), 1)
    data = w.header(0) + w.record(b"N" * 12, b"x" * 20)
    rep = _verify(data)
    assert not rep["ok"] and "no checkpoint" in rep["first_problem"]["problem"]


def test_resealed_with_later_key_fails() -> None:
    # An attacker holding a later key rebuilds the whole log: every earlier seal fails.
    stolen = chain.derive(KEY0, 3)
    w = ChainWriter("log1", chain.SealKey(0, stolen), chain.genesis("log1"), 1)
    data = w.header(0) + w.checkpoint({"ts": 1.0, "base": {}}, _sign)[0]
    rep = _verify(data)
    assert not rep["ok"] and "seal invalid" in rep["first_problem"]["problem"]


def test_torn_tail_is_tolerated_but_corruption_is_not() -> None:
    data, _w = _build()
    extra = framing.encode_frame(framing.RECORD, b"z" * 60)
    rep = _verify(data + extra[:30])
    assert rep["ok"] and "unfinished write" in " ".join(rep["warnings"])
    frames = framing.scan(data)[0]
    off = frames[2][0]
    bad = data[:off + 3] + b"\xff" + data[off + 4:]
    rep = _verify(bad)
    assert not rep["ok"] and ("offset %d" % off) in rep["first_problem"]["where"]


def test_truncation_against_heads_and_key_epoch() -> None:
    data, w = _build()
    frames = framing.scan(data)[0]
    cut = data[:frames[-1][0]]  # drop the last checkpoint
    rep = _verify(cut, key_epoch=w.seal_key.epoch)
    assert not rep["ok"] and "truncated" in rep["first_problem"]["problem"]
    head = decode(frames[-1][2])
    rep = _verify(cut, heads=[head])
    assert not rep["ok"] and "truncated" in rep["first_problem"]["problem"]


def test_garbage_header_rejected() -> None:
    rep = _verify(b"this is not a log at all")
    assert not rep["ok"] and "not a Mamori access-log" in rep["first_problem"]["problem"]
    raises(IntegrityError, framing.parse_header, b'{"format":"other"}')
