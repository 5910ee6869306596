"""Which radio services (BLE, Zigbee) a gateway runs, from its board profile (CPython)."""

from __future__ import annotations

from firmware.core import boardspec
from firmware.gateway.ble.backends import ble_radio
from firmware.gateway.ble.service import BleService
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.service import ZigbeeService


def radio_services(gw: Gateway, control: ControlService | None,
                   binding: DeviceBinding | None) -> tuple[BleService | None,
                                                           ZigbeeService | None]:
    """The BLE service on the board's backend (sim, bluez, hci) and the Zigbee service."""
    radios = gw.board.get("radios") or {}
    ble = None
    if boardspec.ble_backend(gw.board) in ("sim", "bluez", "hci"):
        ble = BleService(gw, ble_radio(gw.board),
                         hello_check=binding.check if binding else None)
    zigbee = ZigbeeService(gw, control) if radios.get("zigbee") else None
    return ble, zigbee
