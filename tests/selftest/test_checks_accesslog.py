"""accesslog.* checks (SR3-H-8, R3-5, SR3-H-6, UK10): healthy log passes, broken logging fails."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from firmware.core.accesslog import framing
from firmware.gateway.accesslog import store as store_mod
from firmware.gateway.accesslog.store import AccessLogStore
from tests.accesslog.helpers import frames_of, rewrite, segments
from tests.selftest import helpers
from tests.selftest.helpers import provisioned, run_area, snapshot

LOG_REQS = ["SR3-H-8", "R3-5", "UK10"]
REST_REQS = ["SR3-H-6", "SR3-H-8", "UK4", "UK8"]


def run(state: Path, only: str = "accesslog", **options: object) -> dict:
    return run_area(state, only, options=options)


def assert_fail(res: dict, check_id: str, needle: str) -> None:
    helpers.assert_fail(res, check_id,
                        REST_REQS if check_id.endswith("at-rest") else LOG_REQS, needle)


def test_healthy_log_passes_and_is_left_untouched(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    before = snapshot(state)
    res = run(state)
    assert {k: r.verdict for k, r in res.items()} == {k: "pass" for k in res}, \
        {k: r.evidence for k, r in res.items()}
    assert snapshot(state) == before
    ev = "\n".join(res["accesslog.synthetic-record"].evidence)
    assert '"action": "unlock"' in ev and '"target": "selftest-door"' in ev and "boot id" in ev
    assert "canary absent" in res["accesslog.encrypted-at-rest"].evidence[0]


def test_logging_disabled_no_log(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    shutil.rmtree(state / "accesslog")
    res = run(state)
    for cid in ("accesslog.chain", "accesslog.synthetic-record", "accesslog.encrypted-at-rest",
                "accesslog.upload"):
        assert_fail(res, cid, "logging is disabled")


def test_logging_disabled_store_not_writable(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    for key in (state / "accesslog" / "keys").iterdir():  # crypto-erased under a running gw
        key.unlink()
    assert_fail(run(state, "accesslog.synthetic-record"), "accesslog.synthetic-record",
                "cannot be opened for writing")
    state = provisioned(tmp_path / "b")
    segments(state)[-1].chmod(0o400)
    assert_fail(run(state, "accesslog.chain"), "accesslog.chain", "is not writable")


@pytest.mark.parametrize(("status", "needle"), [
    ({"gateway": {}}, "has no access-log service"),
    ({"accesslog": {"errors": 3}}, "reported 3 failed append(s)"),
])
def test_logging_disabled_in_the_running_gateway(tmp_path: Path, status: dict,
                                                 needle: str) -> None:
    state = provisioned(tmp_path)
    (state / "run").mkdir(exist_ok=True, mode=0o700)
    (state / "run" / "status.json").write_text(json.dumps(status))
    assert_fail(run(state, "accesslog.chain"), "accesslog.chain", needle)


def test_tampered_segment(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    seg = segments(state)[0]
    frames = [(t, b) for _o, t, b in frames_of(seg)]
    i = next(i for i, (t, _b) in enumerate(frames) if t == framing.RECORD)
    body = bytearray(frames[i][1])
    body[30] ^= 1  # one bit of ciphertext; the frame CRC is recomputed to hide it
    frames[i] = (frames[i][0], bytes(body))
    rewrite(seg, frames)
    assert_fail(run(state, "accesslog.chain"), "accesslog.chain", seg.name)


def test_plaintext_record_file_in_the_log(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "accesslog" / "records.jsonl").write_text(json.dumps(
        {"seq": 9, "principal": "alice", "action": "unlock", "target": "front-door"}) + "\n")
    assert_fail(run(state, "accesslog.encrypted-at-rest"), "accesslog.encrypted-at-rest",
                "accesslog/records.jsonl: file outside the encrypted segments holds log "
                "records in clear")


class _NoCipher:
    """A store 'cipher' that writes plaintext (what a broken store would do)."""

    def __init__(self, key: bytes) -> None:
        pass

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return data + bytes(16)

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        return data[:-16]


def test_store_that_writes_plaintext(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = provisioned(tmp_path)
    monkeypatch.setattr(store_mod, "AESGCM", _NoCipher)
    res = run(state, "accesslog.encrypted-at-rest")
    assert_fail(res, "accesslog.encrypted-at-rest", "canary personal data found in the raw file")
    assert not any("Canary-" in e for e in res["accesslog.encrypted-at-rest"].evidence)


def test_upload(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    shutil.rmtree(state / "wan")
    r = run(state, "accesslog.upload")["accesslog.upload"]
    assert r.verdict == "not_applicable" and "no WAN" in r.reason
    (state / "wan").mkdir()
    log = AccessLogStore(state)  # no uploader: the new checkpoints stay pending
    log.open()
    log.append({"kind": "command.unlock", "principal": "bob", "action": "unlock"})
    log.close()
    r = run(state, "accesslog.upload")["accesslog.upload"]
    assert r.verdict == "pass" and any("pending" in e for e in r.evidence)
    assert_fail(run(state, "accesslog.upload", now=time.time() + 7200), "accesslog.upload",
                "sealed head(s) not uploaded")


def test_key_bundle_never_uploaded(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    shutil.rmtree(state / "accesslog")
    log = AccessLogStore(state)
    log.open()
    log.close()
    assert (state / "accesslog" / "outbox" / "keys.bin").exists()
    assert_fail(run(state, "accesslog.upload", now=time.time() + 7200), "accesslog.upload",
                "verification-key bundle has not reached the platform")


def test_synthetic_events_never_reach_the_process_log(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A remote self-test runs inside the live gateway: its synthetic unlock and the canary
    personal data must not appear in the gateway's own log (seen from a newcomer's terminal)."""
    state = provisioned(tmp_path)
    caplog.set_level("DEBUG")
    res = run(state, "accesslog")
    assert res["accesslog.synthetic-record"].verdict == "pass"
    logged = "\n".join(str(getattr(r, "event", "")) + r.getMessage() for r in caplog.records)
    assert "selftest-door" not in logged and "selftest-owner" not in logged
    assert "Canary" not in logged
