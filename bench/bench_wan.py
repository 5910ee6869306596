"""WAN benchmark: messages/s through our client (TLS, QoS 1, persistent outbox) vs bare paho.

All against the same Mosquitto (mutual TLS) in the same run, same payloads, same topic, same
in-flight window (32), a msg-id user property on each publish as ours sends.

What our outbox does per message: put() is one SQLite transaction (WAL, synchronous=FULL: one
WAL fsync) before the message may be sent; the pump reads it back (peek), publishes it with QoS 1;
PUBACKs are collected and deleted in one transaction per network-loop pass.
The like-for-like baseline ("durable") does exactly that durability with a bare loop: one
committed INSERT per message (same pragmas), publish, and acknowledged rows deleted in one
transaction per batch (whenever the in-flight window fills). Also reported: against a bare paho
loop with no persistence at all (what the outbox costs), and how fast a backlog accepted during
an outage drains, against a bare loop draining the same rows from SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import pick, row  # noqa: E402
from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker  # noqa: E402
from firmware.gateway.wan import topics  # noqa: E402
from firmware.gateway.wan.client import WanClient  # noqa: E402
from firmware.gateway.wan.identity import WanIdentity  # noqa: E402
from firmware.gateway.wan.queue import OutboundQueue  # noqa: E402
from firmware.gateway.wan.tls import client_context  # noqa: E402
from tests.wan.pki import make_world  # noqa: E402

N = pick(2000, 100)
WINDOW = 32
PAYLOAD = json.dumps({"kind": "sensor.reading", "severity": "notice", "pad": "x" * 200})


def _db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS q (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, "
               "topic TEXT, payload BLOB)")
    return db


def _insert(db: sqlite3.Connection, msg_id: str, topic: str) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO q (id, topic, payload) VALUES (?, ?, ?)",
               (msg_id, topic, PAYLOAD.encode()))
    db.execute("COMMIT")


def _bare(ident: WanIdentity, n: int, db_path: Path | None, backlog: bool = False) -> float:
    """Bare paho loop; with db_path, the same durability as the outbox (see module doc)."""
    acked: deque[int] = deque()  # PUBACKed mids, appended by paho's network thread
    room = threading.Semaphore(WINDOW)
    inflight: dict[int, str] = {}
    connected = threading.Event()

    def on_pub(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        acked.append(mid)
        room.release()

    topic = topics.up(ident.gateway_id, "events")
    db = _db(db_path) if db_path is not None else None
    if db is not None and backlog:
        for i in range(n):
            _insert(db, "o-%d" % i, topic)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.tls_set_context(client_context(ident))
    c.max_inflight_messages_set(WINDOW)
    c.max_queued_messages_set(0)
    c.on_publish = on_pub
    c.on_connect = lambda *_a: connected.set()
    c.connect(ident.broker_host, ident.broker_port)
    c.loop_start()
    if not connected.wait(10):
        raise RuntimeError("the bare client did not connect to the broker")
    done = 0

    def flush() -> int:
        ids = []
        while acked:
            ids.append(inflight.pop(acked.popleft()))
        if db is not None and ids:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM q WHERE id=?", [(i,) for i in ids])
            db.execute("COMMIT")
        return len(ids)

    t0 = time.perf_counter()
    if db is not None and backlog:
        rows = db.execute("SELECT id, topic, payload FROM q ORDER BY seq").fetchall()
    else:
        rows = [("m-%d" % i, topic, PAYLOAD.encode()) for i in range(n)]
    for msg_id, top, payload in rows:
        if db is not None and not backlog:
            _insert(db, msg_id, top)
        if not room.acquire(blocking=False):  # window full: delete what was acked, then wait
            done += flush()
            room.acquire()
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = ("msg-id", msg_id)
        info = c.publish(top, payload, qos=1, properties=props)
        inflight[info.mid] = msg_id
    deadline = time.monotonic() + 60
    while done < n and time.monotonic() < deadline:
        done += flush()
        time.sleep(0.001)
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    if db is not None:
        db.close()
    if done < n:
        raise RuntimeError("the broker acknowledged %d of %d bare publishes" % (done, n))
    return n / dt


def _ours(ident: WanIdentity, db: Path, n: int, outage: bool) -> float:
    q = OutboundQueue(db)
    c = WanClient(ident, q, backoff_min=0.05, backoff_max=0.2)
    topic = topics.up(ident.gateway_id, "events")
    if outage:  # accepted while the broker is unreachable, then drained
        for i in range(n):
            q.put("o-%d" % i, topic, PAYLOAD.encode(), 2)
        c.start()
        c.wait_connected(10)
        t0 = time.perf_counter()
    else:
        c.start()
        c.wait_connected(10)
        t0 = time.perf_counter()
        for i in range(n):
            q.put("m-%d" % i, topic, PAYLOAD.encode(), 2)
            c.notify()
    while len(q) and time.perf_counter() - t0 < 60:
        time.sleep(0.005)
    dt = time.perf_counter() - t0
    c.stop()
    left = len(q)
    q.close()
    if left:
        raise RuntimeError("%d of %d messages still queued after 60 s" % (left, n))
    return n / dt


def run() -> list[dict[str, Any]]:
    """The WAN benchmarks (see module docstring)."""
    with tempfile.TemporaryDirectory(prefix="mamori-bench-wan-") as d:
        w = make_world(Path(d) / "pki")
        b = EmbeddedBroker(Path(d) / "broker", BrokerTls(w.ca.path, w.broker.cert_path,
                                                         w.broker.key_path))
        b.start()
        try:
            ident = WanIdentity("gw-1", w.gateway.cert_path, w.ca.path, w.verify_key,
                                "localhost", b.port, client_key_path=w.gateway.key_path)
            bare_mem = _bare(ident, N, None)
            bare_durable = _bare(ident, N, Path(d) / "bare1.db")
            ours = _ours(ident, Path(d) / "q1.db", N, outage=False)
            bare_drain = _bare(ident, N, Path(d) / "bare2.db", backlog=True)
            drain = _ours(ident, Path(d) / "q2.db", N, outage=True)
        finally:
            b.stop()
    durable = "bare paho loop, same durability: committed SQLite INSERT per message " \
              "(WAL, synchronous=FULL), QoS 1, acked rows deleted per batch"
    return [
        row("wan_publish_qos1_tls", "msg/s", ours, durable, bare_durable, messages=N),
        row("wan_publish_qos1_tls_vs_no_persistence", "msg/s", ours,
            "bare paho publish loop, QoS 1, nothing persisted", bare_mem, messages=N,
            note="the cost of the persistent outbox itself"),
        row("wan_queue_drain_after_outage", "msg/s", drain,
            "bare paho loop draining the same backlog from SQLite, acked rows deleted per batch",
            bare_drain, messages=N),
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
