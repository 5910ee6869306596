"""Whether the composition root runs a Zigbee service for a board (CPython)."""

from __future__ import annotations

from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.zigbee.service import ZigbeeService


def zigbee_service(gw: Gateway, control: ControlService | None) -> ZigbeeService | None:
    """The Zigbee service when the board profile declares a coordinator, else None."""
    if not gw.board.radios.zigbee:
        return None
    return ZigbeeService(gw, control)
