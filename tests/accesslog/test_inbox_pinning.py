"""The platform's copy keeps the first key escrow and never lets an upload rewrite the past."""

from __future__ import annotations

import json
from pathlib import Path

from host_tools.logs.inbox import PlatformInbox


def _bundle(key0: str, pub: str = "ab" * 32) -> dict:
    return {"log_id": "log-1", "pub": pub, "key0": key0, "data_key": "cd" * 32,
            "created": 1.0}


def test_second_key_escrow_cannot_replace_the_first(tmp_path: Path) -> None:
    inbox = PlatformInbox(tmp_path / "in")
    first = _bundle("11" * 32)
    assert inbox({"type": "keys", "log_id": "log-1", "bundle": first})
    # at-least-once delivery: the same escrow again is fine
    assert inbox({"type": "keys", "log_id": "log-1", "bundle": dict(first)})
    # a later (compromised) gateway re-keys the log to re-seal it: refused, first key kept
    forged = _bundle("22" * 32, pub="ef" * 32)
    assert not inbox({"type": "keys", "log_id": "log-1", "bundle": forged})
    kept = json.loads((tmp_path / "in" / "platform-keys.json").read_text())
    assert kept["key0"] == "11" * 32 and kept["pub"] == "ab" * 32


def test_segment_upload_may_only_extend_what_is_held(tmp_path: Path) -> None:
    inbox = PlatformInbox(tmp_path / "in")
    seg = {"type": "segment", "log_id": "log-1", "name": "seg-00000000.log"}
    assert inbox(dict(seg, data=b"AAAA"))
    assert inbox(dict(seg, data=b"AAAABBBB"))  # the segment grew: appended
    assert inbox(dict(seg, data=b"AAAA"))  # an older, shorter copy: nothing to do
    # longer but with a rewritten prefix: refused, the held bytes stay
    assert not inbox(dict(seg, data=b"XXXXBBBBCCCC"))
    assert (tmp_path / "in" / "seg-00000000.log").read_bytes() == b"AAAABBBB"
