"""WAN benchmark: messages/s through our client (TLS, QoS 1, persistent queue) vs bare paho.

Both run against the same Mosquitto (mutual TLS) in the same run. Also measures how fast the
queue drains after an outage (messages accepted while the broker was unreachable).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker  # noqa: E402
from firmware.gateway.wan import topics  # noqa: E402
from firmware.gateway.wan.client import WanClient  # noqa: E402
from firmware.gateway.wan.identity import WanIdentity  # noqa: E402
from firmware.gateway.wan.queue import OutboundQueue  # noqa: E402
from firmware.gateway.wan.tls import client_context  # noqa: E402
from tests.wan.pki import make_world  # noqa: E402

N = 2000
PAYLOAD = json.dumps({"kind": "sensor.reading", "severity": "notice", "pad": "x" * 200})


def _bare(ident: WanIdentity, n: int) -> float:
    done = threading.Event()
    acked = [0]

    def on_pub(*_a: Any) -> None:
        acked[0] += 1
        if acked[0] >= n:
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=mqtt.MQTTv5)
    c.tls_set_context(client_context(ident))
    c.max_inflight_messages_set(32)
    c.max_queued_messages_set(0)
    c.on_publish = on_pub
    c.connect(ident.broker_host, ident.broker_port)
    c.loop_start()
    t0 = time.perf_counter()
    for _ in range(n):
        c.publish(topics.up(ident.gateway_id, "events"), PAYLOAD.encode(), qos=1)
    done.wait(60)
    dt = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
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
    q.close()
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
            bare = _bare(ident, N)
            ours = _ours(ident, Path(d) / "q1.db", N, outage=False)
            drain = _ours(ident, Path(d) / "q2.db", N, outage=True)
        finally:
            b.stop()
    return [
        {"name": "wan_publish_qos1_tls", "unit": "msg/s", "value": round(ours, 1),
         "baseline_name": "bare paho publish loop (TLS, QoS 1, same broker)",
         "baseline": round(bare, 1), "ratio": round(ours / bare, 3), "messages": N,
         "note": "ours commits each message to SQLite (synchronous=FULL) before sending"},
        {"name": "wan_queue_drain_after_outage", "unit": "msg/s", "value": round(drain, 1),
         "baseline_name": "bare paho publish loop (TLS, QoS 1, same broker)",
         "baseline": round(bare, 1), "ratio": round(drain / bare, 3), "messages": N},
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
