"""The device agent's BLE peripheral on the bumble host stack (controller over HCI).

For devices whose controller is driven over HCI directly (UART, USB, or bumble's virtual
controller in tests). Advertises the Mamori service with one characteristic (write from the
gateway, notify to it); pairs with LE Secure Connections only; ``accept()`` returns the link once
the gateway has paired and subscribed, ready for ``run_ble_session``. Stands alone: nothing here
comes from the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bumble import gatt
from bumble.device import Connection, Device
from bumble.host import Host

from firmware.common.ble import hci
from firmware.common.ble.gatt import CHAR_UUID, SERVICE_UUID, SegmentedTransport
from firmware.core.errors import StateError

ACCEPT_TIMEOUT = 30.0


class PeripheralTransport(SegmentedTransport):
    """The device's end of one link: notifications out, GATT writes in."""

    def __init__(self, device: Device, conn: Connection, char: gatt.Characteristic) -> None:
        super().__init__(hci.pairing_mode(conn), str(conn.peer_address),
                         conn.att_mtu)
        self.device = device
        self.conn = conn
        self.char = char

    async def _send_value(self, value: bytes) -> None:
        await self.device.notify_subscriber(self.conn, self.char, value)


class HciPeripheral:
    """A Mamori device's BLE side: advertise, pair (SC only), hand out each gateway link."""

    def __init__(self, host: Host, name: str = "mamori-device", sc_only: bool = True) -> None:
        self.device = Device(name=name, address=hci.random_static_address(), host=host)
        hci.secure_device(self.device, sc=sc_only)
        self.char: gatt.Characteristic[bytes] = gatt.Characteristic(
            CHAR_UUID, gatt.Characteristic.Properties.WRITE | gatt.Characteristic.Properties.NOTIFY,
            gatt.Characteristic.WRITEABLE | gatt.Characteristic.WRITE_REQUIRES_ENCRYPTION,
            gatt.CharacteristicValue[bytes](write=self._written))
        self.device.add_service(gatt.Service(SERVICE_UUID, [self.char]))
        self.links: dict[int, PeripheralTransport] = {}
        self._ready: asyncio.Queue[PeripheralTransport] = asyncio.Queue()
        self.name = name

    @property
    def address(self) -> str:
        """The address the device advertises with."""
        return str(self.device.random_address)

    async def start(self) -> None:
        """Power on and advertise the Mamori service."""
        try:
            await self.device.power_on()
        except Exception as exc:
            raise StateError("the BLE controller did not power on: %s" % exc)
        self.char.on(self.char.EVENT_SUBSCRIPTION, self._subscribed)
        self.device.advertising_data = hci.advertising_data(self.name)
        await self.device.start_advertising(auto_restart=True)

    async def stop(self) -> None:
        """Stop advertising and drop the links."""
        with contextlib.suppress(Exception):
            await self.device.stop_advertising()
        for link in list(self.links.values()):
            with contextlib.suppress(Exception):
                await link.conn.disconnect()
        with contextlib.suppress(Exception):
            await self.device.power_off()

    async def accept(self, timeout: float = ACCEPT_TIMEOUT) -> PeripheralTransport:
        """The next gateway link that is paired and subscribed."""
        return await asyncio.wait_for(self._ready.get(), timeout)

    def _subscribed(self, conn: Connection, notify: bool, *_: Any) -> None:
        if not notify or conn.handle in self.links:
            return
        link = PeripheralTransport(self.device, conn, self.char)
        self.links[conn.handle] = link
        conn.on(conn.EVENT_DISCONNECTION, lambda *_: self.links.pop(conn.handle, None))
        self._ready.put_nowait(link)

    def _written(self, conn: Connection, value: bytes) -> None:
        link = self.links.get(conn.handle)
        if link is not None:
            link.value_received(value)
