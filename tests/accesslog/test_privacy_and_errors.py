"""Encryption at rest, crypto-erase, uploads to the platform, and clear errors on bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from firmware.common.accesslog.reader import records
from firmware.common.accesslog.source import open_source
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.accesslog.store import AccessLogStore
from host_tools.cli.main import main
from host_tools.logs.inbox import PlatformInbox
from tests.accesslog.helpers import CANARY, build_log, report, segments


def _raw_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_canary_never_in_plaintext(tmp_path: Path) -> None:
    state = tmp_path / "state"
    build_log(state, records=20)
    for p in _raw_files(state):
        data = p.read_bytes()
        assert CANARY.encode() not in data, p
        assert CANARY.encode("utf-16-le") not in data, p
    assert any(CANARY in json.dumps(r) for r in records(open_source(state)))


def test_secrets_are_redacted_before_encryption(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = AccessLogStore(state)
    store.open()
    store.append({"kind": "login", "params": {"password": "hunter2-secret", "user": "u"}})
    store.close()
    [rec] = [r for r in records(open_source(state)) if r["kind"] == "login"]
    assert rec["params"]["password"] == "[redacted]"


def test_crypto_erase_makes_old_records_unreadable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = build_log(state, records=10)
    stolen = tmp_path / "stolen"
    stolen.mkdir()
    for p in segments(state):
        (stolen / p.name).write_bytes(p.read_bytes())
    store.crypto_erase()
    (state / "keys" / "device.kek").unlink()  # the resale reset also destroys the KEK
    assert not segments(state)
    assert not (state / "accesslog" / "keys" / "data.key").exists()
    # The raw copy still verifies structurally, but nothing can decrypt it any more.
    src = open_source(stolen)
    with pytest.raises(StateError):
        list(records(src))
    src.data_key = os.urandom(32)
    with pytest.raises(IntegrityError):
        list(records(src))


def test_garbage_truncated_and_foreign_files(tmp_path: Path, capsys: Any) -> None:
    garbage = tmp_path / "seg-00000000.log"
    garbage.write_bytes(os.urandom(300))
    assert main(["logs", "verify", str(garbage)]) == 2
    assert "not a Mamori access-log segment" in capsys.readouterr().out
    foreign = tmp_path / "foreign.json"
    foreign.write_text('{"hello": "world"}')
    assert main(["logs", "verify", str(foreign)]) == 2
    assert "not a Mamori access-log segment" in capsys.readouterr().out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["logs", "verify", str(empty)]) == 1
    assert "no access log here" in capsys.readouterr().err
    state = tmp_path / "state"
    build_log(state, records=10)
    seg = segments(state)[0]
    seg.write_bytes(seg.read_bytes()[:7])
    assert main(["logs", "verify", str(state)]) == 2
    out = capsys.readouterr().out
    assert "BROKEN at " + seg.name in out
    with pytest.raises(ConfigError):
        open_source(tmp_path / "missing")


def test_cli_verify_show_export(tmp_path: Path, capsys: Any) -> None:
    state = tmp_path / "state"
    build_log(state, records=12)
    assert main(["logs", "verify", str(state), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["records"] == 12
    assert main(["logs", "verify", str(state / "accesslog")]) == 0
    assert "intact" in capsys.readouterr().out
    assert main(["logs", "show", str(state), "--device", "lock-1", "--action", "unlock"]) == 0
    out = capsys.readouterr().out
    assert "4 record(s)" in out and "lock-1" in out and "lock-2" not in out
    assert main(["logs", "show", str(state), "--since", "2999-01-01"]) == 0
    assert "0 record(s)" in capsys.readouterr().out
    assert main(["logs", "export", str(state), "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["seq"] == 1
    assert main(["logs", "export", str(state), "--format", "csv", "--source", "owner-app"]) == 0
    assert capsys.readouterr().out.startswith("seq,time,")


class _Bus:
    def __init__(self) -> None:
        self.subs: list[Any] = []

    def subscribe(self, cb: Any) -> None:
        self.subs.append(cb)

    def publish(self, ev: Event) -> None:
        for cb in self.subs:
            cb(ev)


class _Gw:
    def __init__(self, state: Path) -> None:
        self.state_dir = state
        self.bus = _Bus()
        self.boot_id = "boot-1"


def test_service_records_events_and_uploads(tmp_path: Path) -> None:
    gw = _Gw(tmp_path / "state")
    svc = AccessLogService(gw, segment_bytes=4096, checkpoint_every=8)  # type: ignore[arg-type]
    svc.open()
    inbox = PlatformInbox(tmp_path / "platform")
    refused: list[dict[str, Any]] = []
    svc.set_uploader(lambda item: refused.append(item) and False)  # WAN down
    assert [p["type"] for p in svc.pending_uploads()][:2] == ["keys", "head"]
    svc.set_uploader(inbox)
    assert not svc.store.keys.bundle_path.exists()  # key_0 left the gateway
    for i in range(30):
        gw.bus.publish(Event("device.command", source="platform", principal="ops",
                             action="set", target="plug-%d" % i, result="ok"))
    gw.bus.publish(Event("rogue.device", severity="alert", source="zigbee", target="evil"))
    heads = (tmp_path / "platform" / "heads.jsonl").read_text().splitlines()
    assert json.loads(heads[-1])["seq"] == 31  # the alert was sealed and sent at once
    # The alert closed its segment, which went up at once; the request sends the rest.
    svc.request_upload()
    assert not svc.pending_uploads()
    rep = report(tmp_path / "platform")
    assert rep["ok"], rep["problems"]
    assert not [w for w in rep["warnings"] if "not checked" in w]
    rows = list(records(open_source(tmp_path / "platform")))
    assert rows[-1]["kind"] == "rogue.device" and rows[0]["boot"] == "boot-1"
    # Local truncation shows against the heads the platform holds.
    svc.store.close()
    segs = segments(gw.state_dir)
    for p in segs[1:]:
        p.unlink()
    rep = report(gw.state_dir, key_file=tmp_path / "platform" / "platform-keys.json",
                 heads_file=tmp_path / "platform" / "heads.jsonl")
    assert not rep["ok"]
    assert any("truncated" in p["problem"] or "missing" in p["problem"]
               for p in rep["problems"])


def test_state_dir_without_uploaded_key_says_seals_unchecked(tmp_path: Path) -> None:
    gw = _Gw(tmp_path / "state")
    svc = AccessLogService(gw)  # type: ignore[arg-type]
    svc.open()
    svc.set_uploader(PlatformInbox(tmp_path / "platform"))
    svc.append({"kind": "selftest.run", "result": "pass"})
    svc.store.close()
    rep = report(gw.state_dir)
    assert rep["ok"]
    assert any("seals not checked" in w for w in rep["warnings"])
    rep = report(gw.state_dir, key_file=tmp_path / "platform" / "platform-keys.json")
    assert rep["ok"] and not any("not checked" in w for w in rep["warnings"])


def test_reopen_recovers_torn_tail_and_seals(tmp_path: Path) -> None:
    state = tmp_path / "state"
    store = AccessLogStore(state, checkpoint_every=100)
    store.open()
    for i in range(5):
        store.append({"kind": "k", "target": str(i)})
    assert store._fd is not None
    os.write(store._fd, b"R\x00\x00\x01\x00partial")  # a write cut short by power loss
    os.close(store._fd)
    store._fd = None
    assert store._lock_fd is not None
    os.close(store._lock_fd)
    store._lock_fd = None
    rep = report(state)
    assert rep["ok"] and any("unfinished write" in w for w in rep["warnings"])
    again = AccessLogStore(state)
    again.open()
    assert any("dropped" in r for r in again.recovery)
    again.close()
    rep = report(state)
    assert rep["ok"] and rep["unsealed"] == 0 and rep["records"] == 6
    with pytest.raises(StateError):
        AccessLogStore(state).append({"kind": "x"})
