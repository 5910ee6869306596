"""Simulated BLE and Zigbee devices of the sim demo house (CPython).

The BLE device is a real device agent speaking Noise IK over the sim radio's loopback link. The
Zigbee device joins the way an installer would make it join: a window opened for its
credentials, then a join with its install-code link key, then periodic reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import Any

from firmware.common.installcode import link_key
from firmware.core.errors import MamoriError
from firmware.device.blerunner import run_ble_forever
from firmware.device.credentials import load as load_credentials
from firmware.device.credentials import three_star_guard
from firmware.device.portable.agent import DeviceAgent
from firmware.gateway.ble.service import BleService, LoopbackBleRadio
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.sim.devices import SimTasksService
from firmware.gateway.zigbee.service import SimZigbeeRadio, ZigbeeService

JOIN_WINDOW = 60


class SimRadioDevicesService(SimTasksService):
    """Runs the demo's BLE agents and Zigbee devices against the gateway's sim radios."""

    name = "simradio"

    def __init__(self, gw: Gateway, ble: BleService | None, zigbee: ZigbeeService | None,
                 devices: dict[str, dict[str, Any]]) -> None:
        super().__init__(gw)
        self.ble = ble
        self.zigbee = zigbee
        self.devices = devices
        self.zigbee_state: dict[str, dict[str, Any]] = {}

    async def start(self) -> None:
        """Start one task per simulated radio device."""
        for dev_id, ident in sorted(self.devices.items()):
            creds = load_credentials(ident["credentials"])
            if ident["transport"] == "ble" and self.ble is not None and isinstance(
                    self.ble.radio, LoopbackBleRadio):
                agent = DeviceAgent(dev_id, kind=ident["kind"], interval=ident["interval"],
                                    maker=ident["maker"], model=ident["model"], transport="ble",
                                    guard=three_star_guard(creds, str(creds["gateway_id"])))
                self.agents[dev_id] = agent
                self._spawn(run_ble_forever(agent, creds, self.ble.radio.connect,
                                            stop=self._stop))
            elif ident["transport"] == "zigbee" and self.zigbee is not None:
                self.zigbee_state[dev_id] = {"joined": False, "reports": 0}
                self._spawn(self._zigbee_device(ident, creds))
        self._started(sorted(self.devices))

    async def _zigbee_device(self, ident: dict[str, Any], creds: dict[str, Any]) -> None:
        assert self.zigbee is not None
        state = self.zigbee_state[ident["id"]]
        radio = self.zigbee.radio
        if self.zigbee.app is None or not isinstance(radio, SimZigbeeRadio):
            state["error"] = "no simulated Zigbee radio"
            return
        try:
            # The installer opens the window; the device joins with its install-code key.
            await self.zigbee.permit(creds, JOIN_WINDOW, ident["interval"])
        except MamoriError as exc:
            state["error"] = exc.message
            return
        key = link_key(bytes.fromhex(creds["install_code"]))
        state["joined"] = radio.device_joins(creds["ieee"], 0x1000 + secrets.randbelow(0xE000),
                                             key)
        while state["joined"] and not self._stop.is_set():
            if radio.report(creds["ieee"]):
                state["reports"] += 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), float(ident["interval"]))

    def status(self) -> dict[str, Any]:
        """Which simulated radio devices run and whether they are in."""
        out: dict[str, Any] = {dev_id: {"transport": "ble", "ready": a.ready,
                                        "heartbeats": a.seq}
                               for dev_id, a in self.agents.items()}
        for dev_id, st in self.zigbee_state.items():
            out[dev_id] = dict(st, transport="zigbee")
        return dict(sorted(out.items()))
