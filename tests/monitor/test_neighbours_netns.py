"""Unknown hosts and changed MACs on the LAN side, in network namespaces the test creates."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.events import Event
from firmware.gateway.monitor.neighbours import NeighbourWatcher, parse_ip_neigh, parse_proc_arp
from firmware.gateway.monitor.service import MonitorService, peer_ip
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.conftest import require
from tests.monitor.helpers import until

_n = itertools.count()
NEW_MAC = "02:00:5e:00:53:99"


def sh(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout


@pytest.fixture
def lan_pair() -> Iterator[dict[str, str]]:
    """Namespaces `gw` and `intruder` joined by a veth pair on 10.77.N.0/24."""
    require("netns")
    n = next(_n)
    tag = "%d%d" % (os.getpid() % 100000, n)
    lab = {"gw": "mmon-gw-" + tag, "in": "mmon-in-" + tag, "gdev": "mg" + tag,
           "idev": "mi" + tag, "net": "10.77.%d" % (os.getpid() % 200 + n)}
    sh("ip", "netns", "add", lab["gw"])
    try:
        sh("ip", "netns", "add", lab["in"])
        sh("ip", "link", "add", lab["gdev"], "netns", lab["gw"], "type", "veth", "peer", "name",
           lab["idev"], "netns", lab["in"])
        for ns, dev, host in ((lab["gw"], lab["gdev"], "1"), (lab["in"], lab["idev"], "2")):
            sh("ip", "-n", ns, "addr", "add", "%s.%s/24" % (lab["net"], host), "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield lab
    finally:
        subprocess.run(["ip", "netns", "del", lab["in"]], capture_output=True)
        subprocess.run(["ip", "netns", "del", lab["gw"]], capture_output=True)


def talk_to_gateway(lab: dict[str, str]) -> None:
    """The intruder sends one UDP datagram to the gateway (ARP resolution happens first)."""
    code = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.sendto(b'hi', ('%s.1', 9))" % lab["net"])
    sh("ip", "netns", "exec", lab["in"], sys.executable, "-c", code)


def test_unknown_host_is_new_station_and_changed_mac_reported(lan_pair: dict[str, str],
                                                              tmp_path: Path) -> None:
    lab = lan_pair
    intruder_ip = lab["net"] + ".2"

    async def main() -> tuple[list[Event], dict]:
        gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        mon = MonitorService(gw, period=0.05)
        watcher = NeighbourWatcher(gw, mon, dev=lab["gdev"], netns=lab["gw"], period=0.1,
                                   grace=0.0)
        await mon.start()
        await watcher.start()
        await asyncio.sleep(0.3)
        assert not [e for e in events if e.kind == "rogue.device"]   # nobody there yet
        talk_to_gateway(lab)
        await until(lambda: any(e.kind == "rogue.device" for e in events), what="new station")
        sh("ip", "-n", lab["in"], "link", "set", "dev", lab["idev"], "address", NEW_MAC)
        sh("ip", "-n", lab["in"], "neigh", "flush", "all")
        talk_to_gateway(lab)
        await until(lambda: len([e for e in events if e.kind == "rogue.device"]) >= 2,
                    what="changed ethernet address")
        status = mon.status()
        await watcher.stop()
        await mon.stop()
        return events, status

    events, status = asyncio.run(main())
    found = [e for e in events if e.kind == "rogue.device"]
    assert found[0].reason == "new station" and found[0].target == intruder_ip
    assert found[0].params["path"] == "arp" and found[0].source == "lan"
    first_mac = found[0].params["evidence"]["mac"]
    assert first_mac != NEW_MAC
    assert found[1].reason == "changed ethernet address"
    assert found[1].params["evidence"]["mac"] == NEW_MAC
    assert found[1].params["evidence"]["old_mac"] == first_mac
    assert status["neighbours"]["stations"] == 1 and status["rogue"]["by_path"]["arp"] == 2


def test_allowlisted_host_is_not_a_new_station(lan_pair: dict[str, str], tmp_path: Path) -> None:
    lab = lan_pair

    async def main() -> tuple[list[Event], NeighbourWatcher]:
        gw = Gateway(GatewayConfig("sim", tmp_path), load_board("sim"))
        events: list[Event] = []
        gw.bus.subscribe(events.append)
        mon = MonitorService(gw, period=0.05)
        watcher = NeighbourWatcher(gw, mon, netns=lab["gw"], period=0.1, grace=0.0,
                                   allow=[lab["net"] + ".2"])
        await mon.start()
        await watcher.start()
        talk_to_gateway(lab)
        await until(lambda: len(watcher.table.stations) == 1, what="station tracked")
        await asyncio.sleep(0.3)
        await watcher.stop()
        await mon.stop()
        return events, watcher

    events, watcher = asyncio.run(main())
    assert not [e for e in events if e.kind == "rogue.device"]
    assert watcher.error == ""


def test_parsers_and_peer_ip() -> None:
    text = ('[{"dst":"10.0.0.2","dev":"eth1","lladdr":"AA:bb:cc:dd:ee:ff","state":["STALE"]},'
            '{"dst":"10.0.0.3","dev":"eth1","state":["FAILED"]},'
            '{"dst":"10.0.0.4","dev":"eth1","lladdr":"00:00:00:00:00:04","state":["FAILED"]}]')
    assert parse_ip_neigh(text) == [("10.0.0.2", "aa:bb:cc:dd:ee:ff")]
    arp = ("IP address  HW type Flags HW address Mask Device\n"
           "10.0.0.2 0x1 0x2 aa:bb:cc:dd:ee:ff * eth1\n"
           "10.0.0.3 0x1 0x0 00:00:00:00:00:00 * eth1\n"
           "10.0.0.5 0x1 0x2 aa:bb:cc:dd:ee:05 * eth0\n")
    assert parse_proc_arp(arp, "eth1") == [("10.0.0.2", "aa:bb:cc:dd:ee:ff")]
    assert peer_ip("10.0.0.2:4567") == "10.0.0.2" and peer_ip("[::1]:80") == "::1"
    assert peer_ip("::1:80") == "::1" and peer_ip("ble") == "ble"
    from firmware.core.errors import StateError
    with pytest.raises(StateError):
        parse_ip_neigh("not json")
