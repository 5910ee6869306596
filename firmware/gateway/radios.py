"""Which radio services (BLE, Zigbee) a gateway runs, from its board profile (CPython)."""

from __future__ import annotations

from firmware.gateway.ble.service import BleRadio, BleService, LoopbackBleRadio
from firmware.gateway.identity.binding import DeviceBinding
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.service import ZigbeeService


def radio_services(gw: Gateway, control: ControlService | None,
                   binding: DeviceBinding | None) -> tuple[BleService | None,
                                                           ZigbeeService | None]:
    """The BLE service (sim: loopback radio; Linux boards: bleak) and the Zigbee service."""
    radios = gw.board.get("radios") or {}
    ble = None
    if radios.get("ble") and gw.board.get("runtime", "cpython") == "cpython":
        radio: BleRadio
        if gw.board["name"] == "sim":
            radio = LoopbackBleRadio()
        else:
            from firmware.gateway.ble.bleakradio import BleakRadio

            radio = BleakRadio()
        ble = BleService(gw, radio, hello_check=binding.check if binding else None)
    zigbee = ZigbeeService(gw, control) if radios.get("zigbee") else None
    return ble, zigbee
