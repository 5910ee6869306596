"""Hostile down-link payloads (issue 23): each one still gets its refusal and its result.

Through a real Mosquitto: a command of 1,000 ``[`` and an unsigned ``lock`` whose ``expires``
has 400 digits each get a ``cmd_result`` refusal and a ``command.refused`` alert (before: a
RecursionError / OverflowError only moved ``handler_errors``); the other request topics refuse
the same shapes with ``platform.request_rejected`` and an ``update`` refusal.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import CommandAuthorizer, CommandRefused
from firmware.gateway.wan import topics
from firmware.gateway.wan.commands import CommandProcessor
from host_tools.platform.client import PlatformClient
from host_tools.platform.signing import new_envelope
from tests.wan.conftest import identity, platform_site
from tests.wan.gwharness import run_gateway
from tests.wan.helpers import wait
from tests.wan.pki import World

DEEP = b"[" * 1000


def _huge_expiry(env: dict[str, Any]) -> bytes:
    text = json.dumps(dict(env, expires=0))
    return text.replace('"expires": 0', '"expires": ' + "9" * 400).encode()


def test_hostile_commands_and_requests_refused_end_to_end(world: World, broker,
                                                           tmp_path: Path) -> None:
    p = PlatformClient(platform_site(world), "mqtts://localhost:%d" % broker.port)
    p.connect()
    lock = new_envelope("gw-1", "door-1", "lock")  # unsigned: lock is not a ★★★ action

    def steps(gw, svc) -> dict[str, Any]:
        c = svc.client
        assert wait(lambda: c.connected)
        cmd = topics.command("gw-1", "door-1")
        p.publish_raw(cmd, DEEP)
        p.publish_raw(cmd, _huge_expiry(lock))
        p.publish_raw(cmd, b'{"v": 1, "id": "c-1", "expires": NaN}')
        results = p.wait_for(lambda m: m["type"] == "cmd_result", 20, count=3)
        alerts = p.wait_for(lambda m: m["type"] == "alerts"
                            and m["body"]["kind"] == "command.refused", 20, count=3)
        for kind in ("selftest_req", "log_req"):
            p.publish_raw(topics.down("gw-1", kind), DEEP)
        p.publish_raw(topics.down("gw-1", "update_req"), DEEP)
        update = p.wait_for(lambda m: m["type"] == "update", 20)
        assert wait(lambda: len([e for e in gw.events
                                 if e.kind == "platform.request_rejected"]) >= 2)
        return {"results": [m["body"] for m in results], "alerts": alerts,
                "update": update[0]["body"], "counters": dict(c.counters),
                "rejected": [e.reason for e in gw.events
                             if e.kind == "platform.request_rejected"]}

    try:
        out = run_gateway(identity(world, broker.port), tmp_path / "s", steps)
    finally:
        p.close()
    assert [r["refused"] for r in out["results"]] == ["malformed"] * 3, out["results"]
    assert "nested deeper" in out["results"][0]["reason"]
    assert out["results"][1]["command_id"] == "" and "digits" in out["results"][1]["reason"]
    assert "NaN" in out["results"][2]["reason"]
    assert len(out["alerts"]) == 3
    assert out["update"]["result"] == "refused" and out["update"]["refused"] == "malformed"
    assert all("nested deeper" in r for r in out["rejected"])
    assert out["counters"]["handler_errors"] == 0


def test_huge_expiry_refused_even_without_the_json_layer() -> None:
    # the portable envelope check bounds `expires` by itself (the device agent calls it too)
    auth = CommandAuthorizer("gw-1", lambda p, s: False, time.time, DeviceAcl(
        [{"principal": "platform", "device": "door-1", "actions": ["lock"]}]))
    env = dict(new_envelope("gw-1", "door-1", "lock"), expires=10 ** 400)
    with pytest.raises(CommandRefused) as exc:
        auth.check(env, "door-1")
    assert exc.value.reason == "malformed" and "expires" in exc.value.message
    for bad in (float("nan"), float("inf"), "x" * 300):
        env = dict(new_envelope("gw-1", "door-1", "lock"), params={"p": bad})
        with pytest.raises(CommandRefused):
            auth.check(env, "door-1")
    env = dict(new_envelope("gw-1", "door-1", "lock"), extra=1)
    with pytest.raises(CommandRefused, match="unknown field 'extra'"):
        auth.check(env, "door-1")


def test_every_hostile_payload_yields_one_result_and_one_refusal() -> None:
    queued: list[dict[str, Any]] = []
    events: list[Any] = []
    auth = CommandAuthorizer("gw-1", lambda p, s: False, time.time, DeviceAcl(
        [{"principal": "platform", "device": "door-1", "actions": ["lock"]}]))
    proc = CommandProcessor(auth, lambda d, a, p: {"ok": True}, lambda s, b, p: queued.append(b)
                            or "id", events.append)
    payloads = [DEEP, b"{" * 5000, _huge_expiry(new_envelope("gw-1", "door-1", "lock")),
                b"\xff\xfe", b"", b"null", b'"\\ud800"', b"1e999", b"-" + b"9" * 5000]
    for payload in payloads:
        res = proc.handle("door-1", payload)
        assert res["refused"] == "malformed", (payload[:20], res)
    assert len(queued) == len(payloads)
    assert [e.kind for e in events] == ["command.refused"] * len(payloads)
