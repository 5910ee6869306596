"""The board's BLE radio: one backend per host stack behind the ``BleRadio`` base (CPython).

``[radios.ble] backend`` picks it: ``bluez`` (bleak over D-Bus, BlueZ owns the controller),
``hci`` (bumble drives the controller over ``hci_transport``), ``sim`` (the sim board's air).
"""

from __future__ import annotations

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError
from firmware.gateway.ble.service import BleRadio, LoopbackBleRadio


def ble_radio(board: Board) -> BleRadio:
    """The BLE radio backend the board profile names (ConfigError when it has none here)."""
    backend, ble = board.ble_backend, board.radios.ble
    if backend == "sim":
        return LoopbackBleRadio()
    if backend == "bluez":
        from firmware.gateway.ble.bleakradio import BleakRadio

        return BleakRadio(ble.controller or "" if ble else "")
    if backend == "hci":
        from firmware.gateway.ble.hciradio import HciRadio

        return HciRadio(ble.hci_transport or "" if ble else "")
    raise ConfigError("BLE backend %r does not run in the CPython gateway" % backend,
                      "board profile", "radios.ble.backend")
