"""SIGKILL during appends: every record whose append returned survives and verifies."""

from __future__ import annotations

import os
import random
import select
import signal
import time
from pathlib import Path

import pytest

from firmware.common.accesslog.reader import records, verify
from firmware.common.accesslog.source import open_source
from firmware.gateway.accesslog.store import AccessLogStore

RUNS = 100


def _child(state: Path, wfd: int) -> None:
    store = AccessLogStore(state, segment_bytes=4096, budget_bytes=16384, checkpoint_every=4)
    store.open()
    i = 0
    while True:
        i += 1
        sev = "alert" if i % 11 == 0 else "info"
        seq = store.append({"kind": "crash.test", "severity": sev, "target": "d%d" % i})
        os.write(wfd, b"%d\n" % seq)  # only after append() returned


@pytest.mark.serial("CPU-heavy kill loop")
@pytest.mark.slow
def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(1234)
    state = tmp_path / "state"
    acked: set[int] = set()
    for run in range(RUNS):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                _child(state, w)
            finally:
                os._exit(0)
        os.close(w)
        buf = b""
        ready, _, _ = select.select([r], [], [], 10.0)  # the child is appending now
        assert ready, "child never appended"
        deadline = time.monotonic() + rng.uniform(0.0, 0.03)  # then kill at a random point
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                buf += os.read(r, 65536)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while True:  # acknowledgements written before the kill
            chunk = os.read(r, 65536)
            if not chunk:
                break
            buf += chunk
        os.close(r)
        now = {int(x) for x in buf.split()}
        assert now, "run %d: no append returned before the kill" % run
        acked |= now
        src = open_source(state)
        rep = verify(src)
        assert rep["ok"], (run, rep["problems"])
        present = {int(rec["seq"]) for rec in records(src)}
        oldest = min(present)
        missing = {s for s in acked if s >= oldest} - present
        assert not missing, (run, sorted(missing)[:10])
    assert len(acked) >= RUNS
