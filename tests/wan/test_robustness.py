"""Hostile or broken input never kills the client; the watchdog revives a wedged loop."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from paho.mqtt.client import MQTTMessage

from firmware.gateway.wan import topics
from host_tools.platform.client import PlatformClient
from host_tools.platform.signing import new_envelope, sign
from tests.wan.conftest import identity, platform_site
from tests.wan.gwharness import run_gateway
from tests.wan.helpers import client, wait
from tests.wan.pki import World


def test_malformed_oversized_unknown_topic(world: World, broker, tmp_path: Path) -> None:
    p = PlatformClient(platform_site(world), "mqtts://localhost:%d" % broker.port)
    p.connect()

    def steps(gw, svc) -> dict[str, Any]:
        c = svc.client
        assert wait(lambda: c.connected)
        cmd = topics.command("gw-1", "door-1")
        p.publish_raw(cmd, b"{not json")
        p.publish_raw(cmd, b"\xff\xfe\x00binary")
        p.publish_raw(cmd, b"[1, 2, 3]")
        p.publish_raw(cmd, b'{"v": 1, "id": "' + b"x" * 40000 + b'"}')  # oversized
        p.publish_raw("mamori/v1/gw-1/cmd/", b"{}")  # empty device level
        p.publish_raw("mamori/v1/gw-1/cmd/a$b", b"{}")  # invalid device id
        p.publish_raw(topics.down("gw-1", "selftest_req"), b"nope")
        # a topic the broker would never route here: fed straight into the callback
        msg = MQTTMessage(topic=b"mamori/v1/gw-2/cmd/door-1")
        msg.payload = b"{}"
        c._on_message(None, None, msg)
        assert wait(lambda: c.counters["inbound_unknown_topic"] >= 3
                    and c.counters["inbound_oversized"] >= 1)
        # everything above was handled before the handler is swapped
        assert p.wait_for(lambda m: m["type"] == "cmd_result"
                          and m["body"]["refused"] == "malformed", 20, count=3)
        assert wait(lambda: any(e.kind == "platform.request_rejected" for e in gw.events))
        # a failing handler and a failing callback are counted, not fatal
        orig = c.on_inbound

        def boom(*a: Any) -> None:
            raise RuntimeError("handler bug")

        c.on_inbound = boom
        p.publish_raw(cmd, b"{}")
        assert wait(lambda: c.counters["handler_errors"] >= 1)
        c.on_inbound = orig
        bad = MQTTMessage(topic=b"mamori/v1/gw-1/cmd/door-1")
        bad.payload = None  # len(None) raises inside the callback
        c._guard(c._on_message)(None, None, bad)
        # still alive: a genuine signed command is executed
        res = p.command(sign(new_envelope("gw-1", "door-1", "unlock"), world.sign_key))
        malformed = [m for m in p.received if m["type"] == "cmd_result"
                     and m["body"]["refused"] == "malformed"]
        return {"res": res, "malformed": len(malformed), "counters": dict(c.counters)}

    try:
        out = run_gateway(identity(world, broker.port), tmp_path / "s", steps)
    finally:
        p.close()
    assert out["res"]["ok"]
    assert out["malformed"] >= 3  # not json, binary, array: each refused with its reason
    cnt = out["counters"]
    assert cnt["inbound_unknown_topic"] == 3 and cnt["inbound_oversized"] == 1
    assert cnt["callback_errors"] == 1 and cnt["handler_errors"] == 1
    assert cnt["connects"] == 1  # never dropped the connection


def test_watchdog_restarts_wedged_loop(world: World, broker, tmp_path: Path) -> None:
    c = client(identity(world, broker.port), tmp_path / "q.db", stall_timeout=1.0)
    release = threading.Event()
    try:
        assert wait(lambda: c.connected)
        wedged = threading.Event()

        def hang() -> None:
            c.fault_hook = None
            wedged.set()
            release.wait(30)  # the network thread is stuck here

        c.fault_hook = hang
        assert wait(lambda: wedged.is_set())
        assert wait(lambda: c.counters["loop_restarts"] >= 1)
        assert wait(lambda: c.connected and c.counters["connects"] >= 2)
        c.outbox.put("after", topics.up("gw-1", "alerts"), b'{"id":"after"}', 0)
        c.notify()
        assert wait(lambda: len(c.outbox) == 0)  # delivered by the new loop
    finally:
        release.set()
        c.stop()


def test_broker_acl_confines_gateway(world: World, broker, tmp_path: Path) -> None:
    c = client(identity(world, broker.port), tmp_path / "q.db")
    try:
        assert wait(lambda: c.connected)
        c.outbox.put("spoof", topics.up("gw-2", "alerts"), b'{"id":"spoof"}', 0)
        c.notify()
        assert wait(lambda: c.counters["publish_rejected"] == 1)
        assert wait(lambda: len(c.outbox) == 0)  # refused for good: not retried forever
        assert c.counters["acked"] == 0
    finally:
        c.stop()
