"""One CRL push, one answer: the gateway never reads (and answers) its own ``crl`` up-link.

Real processes over the real embedded Mosquitto: `mamori-gateway run`, `mamori platform
revocations`, and a watcher counting every message on the gateway's topics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.gateway.wan import topics
from host_tools.platform.client import PlatformClient
from host_tools.platform.site import load_site
from tests.conftest import require
from tests.gateway.helpers import stop_gateway, wait_for
from tests.trust.house import House, make_house, mamori, start_gateway

ROUND_TRIPS = 3  # requests answered after the confirmation: room for any echo to show


@pytest.fixture
def house(tmp_path: Path) -> House:
    h = make_house(tmp_path)
    h.device("lost", model="Sensor 1")
    return h


def test_one_push_gets_one_answer_and_no_echo(house: House, tmp_path: Path) -> None:
    require("mosquitto")
    broker = house.broker(tmp_path / "broker")
    proc, _endpoint = start_gateway(house.state, house.bundles["gw-1"], "--broker", broker.url)
    watch = PlatformClient(load_site(house.site.root, watch=True), broker.url)
    client = PlatformClient(load_site(house.site.root), broker.url)
    try:
        wait_for(house.state, lambda d: (d.get("wan") or {}).get("connected") is True)
        watch.connect()
        house.site.revoke("lost")
        push = mamori("platform", "revocations", "--broker", broker.url,
                      "--site", str(house.site.root), "--gateway", "gw-1", "--json")
        assert push.returncode == 0, push.stdout + push.stderr
        assert json.loads(push.stdout)["gateways"]["gw-1"]["status"] == "installed"
        client.connect()  # after the push: the broker allows one platform client at a time
        # Later requests, answered one after the other: an echo of the answer (priority 0,
        # ahead of these in the gateway's outbox) would reach the watcher before they do.
        for i in range(ROUND_TRIPS):
            start = client.mark()
            client.publish(topics.down("gw-1", "log_req"), {"id": "after-%d" % i})
            assert client.wait_for(lambda m, n=i: m.get("type") == "logs" and (
                m.get("body") or {}).get("request_id") == "after-%d" % n, 30, start=start)
        assert watch.wait_for(lambda m: (m.get("body") or {}).get("request_id")
                              == "after-%d" % (ROUND_TRIPS - 1), 30)
        answers = [m for m in watch.received if m.get("type") == "crl"]
        assert [a["body"]["status"] for a in answers] == ["installed"], answers[:5]
    finally:
        watch.close()
        client.close()
        code, err = stop_gateway(proc)
        broker.stop()
    assert code == 0, err


def test_down_and_up_links_share_no_topic_the_gateway_reads() -> None:
    gw = "gw-1"
    ups = {topics.up(gw, k) for k in topics.UP}
    assert not set(topics.UP) & set(topics.DOWN)
    for sub in topics.subscriptions(gw):
        assert sub not in ups
        assert topics.parse_down(gw, sub.replace("+", "dev")) is not None
    for up in ups:
        assert topics.parse_down(gw, up) is None
