"""Command routing: a device command goes to the service of the device's transport (CPython).

``DeviceRouter.execute`` has the signature of ``LanService.execute`` and is what the WAN
executor calls; it looks the device's transport up in the liveness registry (``ip`` -> the LAN
service, ``ble`` -> the BLE service, ...). Each service's ``execute`` is looked up at call time,
so wrappers installed later (the monitor's result check on the LAN) stay in force.
"""

from __future__ import annotations

from typing import Any

from firmware.core.errors import StateError
from firmware.core.threestar import is_three_star
from firmware.gateway.runtime.gateway import Gateway


class DeviceRouter:
    """Picks the transport service of a device for each command."""

    def __init__(self, gw: Gateway, services: dict[str, Any]) -> None:
        self.gw = gw
        self.services = {k: v for k, v in services.items() if v is not None}

    def transport_of(self, device_id: str) -> str:
        """The transport a device is registered on (StateError for an unknown device)."""
        dev = self.gw.liveness.devices.get(device_id)
        if dev is None:
            raise StateError("device %s is not known to this gateway" % device_id[:64])
        return str(dev.transport)

    async def execute(self, device_id: str, action: str, params: dict[str, Any] | None = None,
                      timeout: float = 5.0,
                      envelope: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a command on the device through its transport; return its real result.

        `envelope`, the platform's signed command, travels unchanged to the device (★★★).
        """
        transport = self.transport_of(device_id)
        service = self.services.get(transport)
        if service is None or not hasattr(service, "execute"):
            raise StateError("commands over %s are not supported by this gateway" % transport)
        if envelope is not None:
            result: dict[str, Any] = await service.execute(device_id, action, params, timeout,
                                                           envelope=envelope)
        else:
            result = await service.execute(device_id, action, params, timeout)
        return result

    def high_risk(self, device_id: str, action: str) -> bool:
        """Whether `action` is ★★★ for this device (its model's set; the defaults if unknown)."""
        return is_three_star(action, self.gw.device_info.get(device_id, {}).get("three_star"))

    def knows(self, device_id: str) -> bool:
        """Whether this gateway has the device (connected now or known from before)."""
        return device_id in self.gw.device_info

    def close_device(self, device_id: str, reason: str) -> list[str]:
        """Close the device's sessions on every transport; the transports that had one."""
        closed = []
        for name, service in sorted(self.services.items()):
            fn = getattr(service, "close_device", None)
            if fn is not None and fn(device_id, reason):
                closed.append(name)
        return closed

    def recent_local_operation(self, device_id: str, within: float) -> dict[str, Any] | None:
        """The device's recent manual operation, from its transport's service."""
        try:
            service = self.services.get(self.transport_of(device_id))
        except StateError:
            return None
        fn = getattr(service, "recent_local_operation", None)
        return fn(device_id, within) if fn is not None else None
