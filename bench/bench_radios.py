"""Radios: Mamori's BLE channel over bumble's host stack, and zigpy-znp over a pty.

- ble_noise_msgs_per_s: authenticated AEAD messages per second gateway<-device through real
  HCI/L2CAP/ATT on bumble virtual controllers (segmented GATT writes/notifications); baseline:
  the same Noise session over the in-process loopback transport (no host stack).
- ble_link_setup: scan, connect, SMP LE Secure Connections pairing, GATT discovery and the Noise
  handshake; baseline: the Noise handshake alone over the loopback transport.
- zigbee_znp_startup: zigpy-znp's ControllerApplication forming a network with Mamori's policy
  attached, over the ZNP responder on a pty; baseline: the sim coordinator's startup.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import pick, row
from firmware.common.ble.channel import LoopbackTransport, device_connect
from firmware.common.boards import load_board
from firmware.device.blehci import HciPeripheral
from firmware.gateway.ble.channel import GatewayBle
from firmware.gateway.ble.hciradio import HciRadio
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.service import ZigbeeService
from tests.ble.bumbleair import Air
from tests.provisioning.sitekit import Kit, load
from tests.zigbee.znp_responder import ZnpResponder


async def _loopback(kit: Kit, creds: dict, n: int) -> tuple[float, float]:
    gw = GatewayBle(kit.state, lambda e: None)
    t0 = time.perf_counter()
    dev_t, gw_t = LoopbackTransport.pair()
    acc = asyncio.ensure_future(gw.accept(gw_t, timeout=10))
    dev = await device_connect(creds, dev_t, timeout=10)
    gws = await acc
    setup = time.perf_counter() - t0
    assert gws is not None
    t0 = time.perf_counter()
    for _ in range(n):
        await dev.send(b"x" * 200)
        await gws.recv(10)
    return setup, n / (time.perf_counter() - t0)


async def _bumble(kit: Kit, creds: dict, n: int) -> tuple[float, float]:
    air = Air()
    sessions: asyncio.Queue[Any] = asyncio.Queue()
    gw = GatewayBle(kit.state, lambda e: None)

    async def on_link(transport: Any) -> None:
        s = await gw.accept(transport, 10)
        await sessions.put(s)
        await asyncio.sleep(3600)  # hold the link while the benchmark runs

    radio = HciRadio(host_factory=air.gateway_host)
    periph = HciPeripheral(air.host())
    t0 = time.perf_counter()
    await radio.start(on_link)
    await periph.start()
    link = await periph.accept()
    dev = await device_connect(creds, link, timeout=10)
    gws = await sessions.get()
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n):
        await dev.send(b"x" * 200)
        await gws.recv(10)
    rate = n / (time.perf_counter() - t0)
    await periph.stop()
    await radio.stop()
    return setup, rate


async def _zigbee(state: Path) -> tuple[float, float]:
    znp = ZnpResponder()
    znp.start()
    sim = load_board("sim")
    board = sim.with_changes(radios=dict(sim.to_dict()["radios"],
                                         zigbee={"radio_type": "znp", "serial_port": znp.path}))
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), board)
    svc = ZigbeeService(gw)
    t0 = time.perf_counter()
    await svc.start()
    real = time.perf_counter() - t0
    assert svc.coordinator is not None and svc.coordinator.state == "up", svc.error
    await svc.stop()
    znp.close()
    sim_gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    sim = ZigbeeService(sim_gw)
    t0 = time.perf_counter()
    await sim.start()
    base = time.perf_counter() - t0
    await sim.stop()
    return real, base


def run() -> list[dict[str, Any]]:
    """The radio figures."""
    n = pick(300, 20)
    with tempfile.TemporaryDirectory(prefix="mamori-bench-radios-") as tmp:
        kit = Kit(Path(tmp) / "kit")
        creds = load(kit.device("bench-ble", transport="ble"))
        base_setup, base_rate = asyncio.run(_loopback(kit, creds, n))
        setup, rate = asyncio.run(_bumble(kit, creds, n))
        zb, zb_base = asyncio.run(_zigbee(kit.state))
    return [
        row("ble_noise_msgs_per_s", "msg/s", rate, "noise_over_loopback", base_rate,
            messages=n, payload_bytes=200),
        row("ble_link_setup", "s", setup, "noise_handshake_over_loopback", base_setup,
            higher_is_better=False),
        row("zigbee_znp_startup", "s", zb, "sim_coordinator_startup", zb_base,
            higher_is_better=False),
    ]
