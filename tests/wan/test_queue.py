"""The store-and-forward queue on its own: priority, budget, de-duplication, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.core.errors import ProtocolError
from firmware.gateway.wan.queue import ROW_OVERHEAD, OutboundQueue, QueueFull


def _ids(q: OutboundQueue) -> list[str]:
    return [m.msg_id for m in q.peek(1000)]


def test_priority_then_fifo(tmp_path: Path) -> None:
    q = OutboundQueue(tmp_path / "q.db")
    for i, prio in enumerate([3, 0, 2, 0, 1, 3]):
        q.put("m%d" % i, "t", b"x", prio)
    assert _ids(q) == ["m1", "m3", "m4", "m2", "m0", "m5"]
    assert [m.msg_id for m in q.peek(2, {"m1"})] == ["m3", "m4"]


def test_ack_and_duplicate_ids(tmp_path: Path) -> None:
    q = OutboundQueue(tmp_path / "q.db")
    assert q.put("a", "t", b"1", 0)
    assert not q.put("a", "t", b"2", 0)  # same id is stored once
    assert q.ack("a") and not q.ack("a")
    assert len(q) == 0 and q.used_bytes == 0


def test_survives_reopen(tmp_path: Path) -> None:
    q = OutboundQueue(tmp_path / "q.db")
    q.put("a", "t", b"1", 2)
    q.put("b", "t", b"2", 0)
    q.close()
    q2 = OutboundQueue(tmp_path / "q.db")
    assert _ids(q2) == ["b", "a"] and len(q2) == 2
    assert q2.used_bytes == 2 * (1 + 1 + ROW_OVERHEAD)


def test_budget_evicts_only_less_urgent(tmp_path: Path) -> None:
    cost = 100 + 1 + ROW_OVERHEAD
    q = OutboundQueue(tmp_path / "q.db", budget_bytes=3 * cost)
    q.put("t1", "t", b"x" * 100, 3)
    q.put("t2", "t", b"x" * 100, 3)
    q.put("a1", "t", b"x" * 100, 0)
    # a new alert pushes out the oldest telemetry
    q.put("a2", "t", b"x" * 100, 0)
    assert _ids(q) == ["a1", "a2", "t2"]
    # new telemetry cannot push out anything more urgent than itself, nor equal
    with pytest.raises(QueueFull):
        q.put("t3", "t", b"x" * 100, 3)
    q.put("a3", "t", b"x" * 100, 0)
    with pytest.raises(QueueFull):
        q.put("a4", "t", b"x" * 100, 0)  # full of alerts: refused, counted, none lost
    assert _ids(q) == ["a1", "a2", "a3"]
    st = q.stats()
    assert st["evicted"] == 2 and st["refused"] == 2 and st["bytes"] <= 3 * cost


def test_oversized_message_refused(tmp_path: Path) -> None:
    q = OutboundQueue(tmp_path / "q.db", max_message=1000)
    with pytest.raises(ProtocolError):
        q.put("big", "t", b"x" * 1001, 0)


def test_nonces_persist_until_expiry(tmp_path: Path) -> None:
    q = OutboundQueue(tmp_path / "q.db")
    q.save_nonce("n1", 100.0)
    q.save_nonce("n2", 10.0)
    q.close()
    assert OutboundQueue(tmp_path / "q.db").load_nonces(50.0) == [("n1", 100.0)]


def test_sealed_outbox_holds_no_event_in_clear_and_rekeys(tmp_path: Path) -> None:
    from firmware.gateway.identity.keystore import KeyStore
    from firmware.gateway.wan.service import QUEUE_KEY, outbox_key

    db = tmp_path / "wan" / "outbox.db"
    q = OutboundQueue(db, key=outbox_key(tmp_path, None))
    event = b'{"principal":"CANARY-guard-7","reason":"approved by CANARY-centre-2"}'
    for i in range(20):
        q.put("m%d" % i, "mamori/v1/gw/events", event, 2)
    q.ack_many(["m%d" % i for i in range(10)])

    def raw() -> bytes:
        return b"".join(p.read_bytes() for p in db.parent.iterdir() if p.is_file())

    assert (db.parent / "outbox.db-wal").exists()  # WAL mode: the rows went through the WAL
    assert b"CANARY" not in raw()  # ... sealed, in the database and in its WAL
    assert [m.payload for m in q.peek(3)] == [event] * 3
    assert q.pending(["m1", "m15", "nope"]) == {"m15"}
    old = KeyStore(tmp_path).get(QUEUE_KEY)
    assert q.rekey() == 10
    assert KeyStore(tmp_path).get(QUEUE_KEY) != old and old not in raw()
    assert [m.payload for m in q.peek(20)] == [event] * 10
    q.close()
    again = OutboundQueue(db, key=outbox_key(tmp_path, None))
    assert len(again) == 10 and again.peek(1)[0].payload == event
    again.close()
    # a backlog whose key was lost can never be sent: dropped and counted, the queue starts
    KeyStore(tmp_path).delete(QUEUE_KEY)
    fresh = OutboundQueue(db, key=outbox_key(tmp_path, None))
    assert len(fresh) == 0 and fresh.undecryptable == 10
    fresh.put("n1", "t", event, 1)
    fresh.close()
    assert OutboundQueue(db, key=outbox_key(tmp_path, None)).peek(1)[0].payload == event
