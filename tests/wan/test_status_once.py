"""A gateway's status reaches a returning watcher once, not as the queued copy plus the
retained copy of the same message."""

from __future__ import annotations

from pathlib import Path

from firmware.gateway.sim.broker import EmbeddedBroker
from firmware.gateway.wan.service import envelope
from host_tools.platform.client import PlatformClient
from tests.wan.conftest import identity, platform_site
from tests.wan.helpers import client, wait
from tests.wan.pki import World


def test_returning_watcher_sees_each_status_once(world: World, broker: EmbeddedBroker,
                                                 tmp_path: Path) -> None:
    url = "mqtts://localhost:%d" % broker.port
    away = PlatformClient(platform_site(world), url, session_id="watch-once")
    away.connect()
    away.close()  # the broker keeps the session: what arrives now is queued for it
    gw = client(identity(world, broker.port), tmp_path / "outbox.db")
    try:
        assert wait(lambda: gw.connected)
        back = PlatformClient(platform_site(world), url, session_id="watch-once")
        back.connect()  # queued live status, then the same status retained on subscribing
        try:
            topic, payload = envelope("gw-1", "events", {"kind": "marker"}, 2, "marker-1")
            gw.outbox.put("marker-1", topic, payload, 2)
            gw.notify()
            assert back.wait_for(lambda m: m.get("id") == "marker-1", 20)
            statuses = [m for m in back.received if m.get("type") == "status"]
        finally:
            back.close()
    finally:
        gw.stop()
        gw.outbox.close()
    assert len(statuses) == 1, statuses
    assert statuses[0]["id"] and statuses[0]["body"]["online"] is True
