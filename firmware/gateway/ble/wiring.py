"""Whether the composition root runs a BLE service for a board, and on which backend (CPython)."""

from __future__ import annotations

from firmware.gateway.ble.backends import ble_radio
from firmware.gateway.ble.service import BleService, HelloCheck
from firmware.gateway.runtime.gateway import Gateway


def ble_service(gw: Gateway, hello_check: HelloCheck | None) -> BleService | None:
    """The BLE service on the board's backend (sim, bluez, hci), else None."""
    if gw.board.ble_backend not in ("sim", "bluez", "hci"):
        return None
    return BleService(gw, ble_radio(gw.board), hello_check=hello_check)
