"""The board's BLE radio: one backend per host stack behind the ``BleRadio`` base (CPython).

``[radios.ble] backend`` picks it: ``bluez`` (bleak over D-Bus, BlueZ owns the controller),
``hci`` (bumble drives the controller over ``hci_transport``), ``sim`` (the sim board's air).
"""

from __future__ import annotations

from typing import Any

from firmware.core import boardspec
from firmware.core.errors import ConfigError
from firmware.gateway.ble.service import BleRadio, LoopbackBleRadio


def ble_radio(board: dict[str, Any]) -> BleRadio:
    """The BLE radio backend the board profile names (ConfigError when it has none here)."""
    backend = boardspec.ble_backend(board)
    ble = board.get("radios", {}).get("ble") or {}
    if backend == "sim":
        return LoopbackBleRadio()
    if backend == "bluez":
        from firmware.gateway.ble.bleakradio import BleakRadio

        return BleakRadio(str(ble.get("controller", "")))
    if backend == "hci":
        from firmware.gateway.ble.hciradio import HciRadio

        return HciRadio(str(ble["hci_transport"]))
    raise ConfigError("BLE backend %r does not run in the CPython gateway" % backend,
                      "board profile", "radios.ble.backend")
