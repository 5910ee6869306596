"""Pre-authentication limits on a real LAN service (mutual TLS on loopback): a device that waits
for its handshake turn still completes it, and a full table drops silent connections before a
device that has already sent its ClientHello."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware.core.events import Event
from firmware.gateway.lan.preauth import PreAuthGuard
from firmware.gateway.lan.service import LanService
from tests.lan.test_mutual_tls import connect, run_gateway, wait_for
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("preauth"))


async def _silent(n: int) -> asyncio.StreamWriter:
    """A connection that never says anything (slow-loris), from its own loopback address."""
    _r, w = await asyncio.open_connection("127.0.0.1", PORT[0], local_addr=("127.5.0.%d" % n, 0))
    return w


PORT = [0]


def test_a_device_waiting_for_its_handshake_turn_still_completes_it(kit: Kit, tmp_path: Path
                                                                    ) -> None:
    first, second = load(kit.device("turn-a")), load(kit.device("turn-b"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        lan.preauth = PreAuthGuard(rate=1.0, burst=1.0, deadline=10.0)
        await connect(lan, first)  # takes the only token
        await connect(lan, second)  # waits ~1 s for its turn; its ClientHello must not be lost
        assert lan.preauth.counts["authenticated"] == 2

    run_gateway(kit, scenario)


def test_full_table_drops_silent_connections_before_a_device_that_spoke(kit: Kit) -> None:
    dev = load(kit.device("spoke-first"))

    async def scenario(lan: LanService, events: list[Event]) -> None:
        lan.preauth = PreAuthGuard(total=3, rate=0.5, burst=1.0, deadline=10.0)
        PORT[0] = lan.port
        held = [await _silent(1)]  # takes the token and waits for a ClientHello forever
        await wait_for(lambda: lan.preauth.status()["unauthenticated"] == 1)
        device = asyncio.create_task(connect(lan, dev))  # waits ~2 s for its turn
        await wait_for(lambda: lan.preauth.status()["unauthenticated"] == 2)
        for n in (2, 3, 4):  # a burst of silent connects while the device waits
            held.append(await _silent(n))
        await wait_for(lambda: lan.preauth.counts["evicted"] == 2)
        await asyncio.wait_for(device, 15)  # not pushed out: it had spoken
        assert lan.preauth.counts["authenticated"] == 1
        for w in held:
            w.close()

    run_gateway(kit, scenario)
