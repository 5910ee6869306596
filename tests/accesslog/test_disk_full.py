"""A full disk (a real tmpfs filled to 100 %): failed appends leave the log exactly as it was,
raise one `accesslog.write_failed` alert, resume when space returns, and `mamori logs verify`
passes with every acknowledged record present."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.accesslog.store import AccessLogStore, AppendFailed
from tests.conftest import ROOT, require
from tests.gateway.helpers import host_cmd


class _Bus:
    def __init__(self) -> None:
        self.subs: list[Any] = []

    def subscribe(self, cb: Any) -> None:
        self.subs.append(cb)

    def publish(self, ev: Event) -> None:
        for cb in list(self.subs):
            cb(ev)


class _Gw:
    """The parts of a gateway the access-log service uses; emit() publishes on the bus."""

    def __init__(self, state: Path) -> None:
        self.state_dir = state
        self.bus = _Bus()
        self.boot_id = "boot-full"
        self.emitted: list[Event] = []

    def emit(self, ev: Event) -> Event:
        self.emitted.append(ev)
        self.bus.publish(ev)
        return ev


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs mounted for this test only."""
    require("mount")
    mnt = tmp_path / ("fs-%s" % uuid.uuid4().hex[:8])
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", str(mnt)],
                   check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> Path:
    """Fill the filesystem holding `path` to 100 % with one file; returns it."""
    filler = path / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 64, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(fd, chunk) < size:
                        break
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    assert os.statvfs(path).f_bavail == 0
    return filler


def _record(i: int, severity: str = "notice") -> dict[str, Any]:
    return {"kind": "device.command", "severity": severity, "source": "platform",
            "principal": "ops", "action": "set", "target": "plug-%d" % i, "result": "ok",
            "params": {"i": i, "pad": "p" * 300}}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(host_cmd(*args), cwd=ROOT, capture_output=True, text=True)


def test_store_append_on_full_disk_leaves_log_unchanged(small_fs: Path) -> None:
    state = small_fs / "state"
    store = AccessLogStore(state, segment_bytes=64 * 1024, budget_bytes=256 * 1024,
                           checkpoint_every=4)
    store.open()
    acked = [store.append(_record(i)) for i in range(10)]
    seg = sorted((state / "accesslog").glob("seg-*.log"))[-1]
    filler = fill(small_fs)
    before = seg.read_bytes()
    next_seq = store.writer.next_seq if store.writer else 0
    failures = 0
    for i in range(10, 30):  # short writes and ENOSPC: each one fails whole
        with contextlib.suppress(AppendFailed):
            acked.append(store.append(_record(i)))
            continue
        failures += 1
        assert seg.read_bytes() == before  # torn frame cut back
        assert store.writer is not None and store.writer.next_seq == next_seq
    assert failures == 20
    filler.unlink()
    acked += [store.append(_record(i)) for i in range(30, 40)]
    store.close()
    assert acked == list(range(acked[0], acked[0] + 20))  # no gap: nothing half-counted
    out = _cli("logs", "verify", str(state), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    shown = json.loads(_cli("logs", "show", str(state), "--json").stdout)
    targets = [r["target"] for r in shown if r.get("kind") == "device.command"]
    assert targets == ["plug-%d" % i for i in [*range(10), *range(30, 40)]]


def test_service_alerts_once_queues_and_resumes(small_fs: Path) -> None:
    state = small_fs / "state"
    gw = _Gw(state)
    uplink: list[Event] = []
    svc = AccessLogService(gw, segment_bytes=64 * 1024,  # type: ignore[arg-type]
                           budget_bytes=256 * 1024, checkpoint_every=8)
    svc.open()
    gw.bus.subscribe(uplink.append)  # the WAN service subscribes after the access log

    for i in range(10):
        gw.emit(Event("device.command", "notice", "platform", principal="ops", action="set",
                      target="plug-%d" % i, result="ok", params={"i": i}))
    assert svc.writer.backlog == 0
    filler = fill(small_fs)
    for i in range(10, 30):
        gw.emit(Event("device.command", "notice", "platform", principal="ops", action="set",
                      target="plug-%d" % i, result="ok", params={"i": i, "pad": "p" * 300}))
    gw.emit(Event("rogue.device", "alert", "lan", target="10.9.9.9", result="refused"))
    failed = [e for e in uplink if e.kind == "accesslog.write_failed"]
    assert len(failed) == 1 and failed[0].severity == "alert"  # once per outage, uplink has it
    assert failed[0].params["errno"] == "ENOSPC"
    assert svc.writer.backlog > 0  # what did not fit is kept, not lost
    filler.unlink()
    gw.emit(Event("device.command", "notice", "platform", principal="ops", action="set",
                  target="plug-after", result="ok"))
    assert svc.writer.backlog == 0
    resumed = [e for e in uplink if e.kind == "accesslog.write_resumed"]
    assert len(resumed) == 1 and resumed[0].params["dropped"] == 0
    svc.store.close()
    out = _cli("logs", "verify", str(state), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    shown = json.loads(_cli("logs", "show", str(state), "--json").stdout)
    kinds = [r.get("kind") for r in shown]
    targets = [r.get("target") for r in shown if r.get("kind") == "device.command"]
    assert targets == ["plug-%d" % i for i in range(30)] + ["plug-after"]
    assert "rogue.device" in kinds and "accesslog.write_failed" in kinds
    assert "accesslog.write_resumed" in kinds
