"""Access-log benchmarks: sustained append rate and verification rate (see docs in run())."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import pick, row
from firmware.common.accesslog.files import ed25519_verify
from firmware.core.accesslog import chain, framing
from firmware.core.accesslog.encoding import canonical, make_record
from firmware.core.accesslog.verify import Verifier
from firmware.core.accesslog.writer import ChainWriter, record_aad
from firmware.gateway.accesslog.keys import public_bytes
from firmware.gateway.accesslog.store import AccessLogStore

APPENDS = pick(3000, 300)
TARGET = 1_000_000
VERIFY_RECORDS = int(os.environ.get("MAMORI_BENCH_VERIFY_RECORDS", pick("200000", "3000")))


def _fields(i: int) -> dict[str, Any]:
    return {"kind": "device.command", "severity": "info", "source": "owner-app",
            "principal": "user-%d" % (i % 7), "action": "set", "target": "plug-%d" % (i % 50),
            "result": "ok", "params": {"state": "on", "n": i}}


def _store_rate(tmp: Path, sync: str) -> tuple[float, int]:
    store = AccessLogStore(tmp / ("state-" + sync), sync=sync)
    store.open()
    every = store.checkpoint_every
    t = time.perf_counter()
    for i in range(APPENDS):
        store.append(_fields(i))
    rate = APPENDS / (time.perf_counter() - t)
    store.close()
    return rate, every


def _plain_rate(tmp: Path, lines: list[bytes], sync_every: int) -> float:
    """The bare loop: the same serialized records appended to a file, fdatasync'ed every
    sync_every records (1: after each record, as the store's "always" policy does)."""
    fd = os.open(tmp / ("plain-%d.log" % sync_every), os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                 0o600)
    t = time.perf_counter()
    for i, line in enumerate(lines, 1):
        os.write(fd, line)
        if i % sync_every == 0:
            os.fdatasync(fd)
    rate = len(lines) / (time.perf_counter() - t)
    os.close(fd)
    return rate


def bench_append(tmp: Path) -> list[dict[str, Any]]:
    """Records/s through the store (minimise, encrypt, chain, tag, sign checkpoints) vs a plain
    append of the same records with the same fdatasync policy, for both durable policies."""
    lines = [canonical(make_record(_fields(i), i + 1, time.time(), 0.0, "b")) + b"\n"
             for i in range(APPENDS)]
    always, every = _store_rate(tmp, "always")
    plain_always = _plain_rate(tmp, lines, 1)
    ckpt, _ = _store_rate(tmp, "checkpoint")
    plain_ckpt = _plain_rate(tmp, lines, every)
    return [
        row("accesslog.append.sync_always", "records/s", always,
            "plain file append of the same records, fdatasync after each", plain_always,
            records=APPENDS, sync_policy="always: fdatasync per record (the default)"),
        row("accesslog.append.sync_checkpoint", "records/s", ckpt,
            "plain file append of the same records, fdatasync every %d" % every, plain_ckpt,
            records=APPENDS, sync_policy="checkpoint: fdatasync per signed checkpoint "
            "(every %d records)" % every),
    ]


def _generate(path: Path, n: int) -> None:
    """A real log (AES-GCM, chain, tags, signed checkpoints every 256) written straight out."""
    log_id = "bench"
    key0 = secrets.token_bytes(32)
    sk = Ed25519PrivateKey.generate()
    aead = AESGCM(secrets.token_bytes(32))
    w = ChainWriter(log_id, chain.SealKey(0, key0), chain.genesis(log_id), 1)
    plain = canonical(make_record(_fields(1), 1, time.time(), 0.0, "boot"))
    seg = 0
    buf = [w.header(0), w.checkpoint({"ts": 0.0, "base": {"seg": 0},
                                      "pub": public_bytes(sk).hex()}, sk.sign)[0]]
    size = 0
    for _ in range(n):
        nonce = os.urandom(12)
        buf.append(w.record(nonce, aead.encrypt(nonce, plain, record_aad(log_id, w.next_seq))))
        if w.unsealed == 256:
            f = w.checkpoint({"ts": 0.0, "base": {"seg": 0}, "seg": seg, "rotate": False},
                             sk.sign)[0]
            buf.append(f)
            size += 256 * 150
            if size > 8 << 20:
                (path / ("seg-%08d.log" % seg)).write_bytes(b"".join(buf))
                seg += 1
                size = 0
                buf = [w.header(seg)]
    buf.append(w.checkpoint({"ts": 0.0, "base": {"seg": 0}, "seg": seg, "rotate": False},
                            sk.sign)[0])
    (path / ("seg-%08d.log" % seg)).write_bytes(b"".join(buf))
    (path / "key0").write_bytes(key0)
    (path / "pub").write_bytes(public_bytes(sk))


def bench_verify(tmp: Path) -> dict[str, Any]:
    """Records/s of full verification (framing, chain, tags, seals, signatures)."""
    d = tmp / "big"
    d.mkdir()
    t = time.perf_counter()
    _generate(d, VERIFY_RECORDS)
    gen_s = time.perf_counter() - t
    key0 = (d / "key0").read_bytes()
    pub = (d / "pub").read_bytes()
    segs = sorted(d.glob("seg-*.log"))
    t = time.perf_counter()
    v = Verifier(key0=key0, pub=pub, sig_verify=ed25519_verify)
    for i, p in enumerate(segs):
        v.feed(p.name, int(p.stem[4:]), p.read_bytes(), i == len(segs) - 1)
    rep = v.finish()
    secs = time.perf_counter() - t
    assert rep["ok"] and rep["records"] == VERIFY_RECORDS, rep["problems"][:3]
    t = time.perf_counter()
    for p in segs:
        data = p.read_bytes()
        for _off, _ft, body in framing.scan(data)[0]:
            hashlib.sha256(body).digest()
    base_s = time.perf_counter() - t
    rate = VERIFY_RECORDS / secs
    return row("accesslog.verify", "records/s", rate,
               "framing scan + one SHA-256 per frame of the same files",
               VERIFY_RECORDS / base_s,
               measured_records=VERIFY_RECORDS, measured_seconds=round(secs, 2),
               generation_seconds=round(gen_s, 2),
               bytes=sum(p.stat().st_size for p in segs),
               extrapolated_seconds_for_1M=round(TARGET / rate, 1),
               note="measured on %d records, 1,000,000 extrapolated linearly" % VERIFY_RECORDS
               if VERIFY_RECORDS < TARGET else "measured on 1,000,000 records")


def run() -> list[dict[str, Any]]:
    """Both benchmarks, in a temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="mamori-bench-accesslog-"))
    try:
        return [*bench_append(tmp), bench_verify(tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for r in run():
        print(r)
