"""BLE radio on the bumble host stack: the gateway is the central on an HCI controller.

For boards whose controller is driven over HCI directly (UART, USB; ``[radios.ble] backend =
"hci"``). Scans for advertisers of the Mamori service; connects to each, pairs with LE Secure
Connections only (a legacy pairing attempt fails SMP and the link is handed to the channel as
``legacy``, which refuses and alerts it), discovers the Mamori characteristic, subscribes, and
hands the link to the BLE service. An address whose link ended is left alone for a while, so
a rogue advertiser cannot keep the radio busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bumble.core import UUID
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.host import Host

from firmware.common.ble import hci
from firmware.common.ble.gatt import CHAR_UUID, SERVICE_UUID, SegmentedTransport
from firmware.core.errors import StateError
from firmware.gateway.ble.service import LinkHandler

CONNECT_TIMEOUT = 10.0
RETRY_AFTER = 10.0
ATT_MTU = 517

HostFactory = Callable[[], Awaitable[Host]]


class CentralTransport(SegmentedTransport):
    """The gateway's end of one link: GATT writes out, notifications in."""

    def __init__(self, peer: Peer, char: Any, mode: str, address: str, mtu: int) -> None:
        super().__init__(mode, address, mtu)
        self.gatt = peer
        self.char = char

    async def _send_value(self, value: bytes) -> None:
        await self.gatt.write_value(self.char, value, with_response=True)


class HciRadio:
    """Central on a bumble host: scan, connect, pair (SC only), serve each Mamori link."""

    kind = "hci"

    def __init__(self, transport: str = "", host_factory: HostFactory | None = None,
                 retry_after: float = RETRY_AFTER) -> None:
        self.transport = transport
        self.host_factory = host_factory
        self.retry_after = retry_after
        self.state = "down"
        self.device: Device | None = None
        self.on_link: LinkHandler | None = None
        self.links: dict[str, asyncio.Task[None]] = {}
        self.refused_until: dict[str, float] = {}
        self.legacy_refused = 0
        self._hci: Any = None
        self._connect_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    async def _host(self) -> Host:
        if self.host_factory is not None:
            return await self.host_factory()
        if not self.transport:
            raise StateError("no HCI transport for the BLE controller",
                             "set [radios.ble] hci_transport in the board profile")
        host, self._hci = await hci.open_host(self.transport)
        return host

    async def start(self, on_link: LinkHandler) -> None:
        """Power the controller on and scan for Mamori advertisers."""
        self.on_link = on_link
        host = await self._host()
        device = Device(name="mamori-gateway", address=hci.random_static_address(), host=host)
        hci.secure_device(device)
        try:
            await device.power_on()
        except Exception as exc:  # controller absent or not answering HCI reset
            raise StateError("the BLE controller did not power on: %s" % exc,
                             "check the controller on %s" % (self.transport or "the host"))
        self.device = device
        device.on(device.EVENT_ADVERTISEMENT, self._on_advertisement)
        await device.start_scanning(filter_duplicates=False)
        self.state = "scanning"

    async def stop(self) -> None:
        """Stop scanning, drop every link, close the controller."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.device is not None:
            with contextlib.suppress(Exception):
                await self.device.stop_scanning()
            with contextlib.suppress(Exception):
                await self.device.power_off()
        if self._hci is not None:
            with contextlib.suppress(Exception):
                await self._hci.close()
        self.state = "down"

    def status(self) -> dict[str, Any]:
        """Backend, library, controller state and links."""
        return {"radio": self.kind, "backend": "hci", "library": "bumble",
                "version": hci.library_version(), "state": self.state,
                "controller": {"state": self.state, "transport": self.transport or "virtual"},
                "links": len(self.links),
                "legacy_refused": self.legacy_refused}

    # -- links ---------------------------------------------------------------------------
    def _on_advertisement(self, adv: Advertisement) -> None:
        addr = str(adv.address)
        if not hci.advertises_mamori(adv.data) or addr in self.links:
            return
        if self.refused_until.get(addr, 0.0) > time.monotonic():
            return
        task = asyncio.get_running_loop().create_task(self._serve(adv))
        self.links[addr] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, adv: Advertisement) -> None:
        addr = str(adv.address)
        conn: Connection | None = None
        try:
            async with self._connect_lock:  # one pending LE connection at a time
                conn = await self.device.connect(adv.address,  # type: ignore[union-attr]
                                                 timeout=CONNECT_TIMEOUT)
            transport = await self._secure_link(conn, addr)
            assert self.on_link is not None
            served = asyncio.ensure_future(self.on_link(transport))
            conn.on(conn.EVENT_DISCONNECTION, lambda *_: served.cancel())
            with contextlib.suppress(asyncio.CancelledError):
                await served
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # out of range, lost mid-way, no channel: next advertisement
            self.state = "scanning (last link failed: %s)" % exc.__class__.__name__
        finally:
            # Every ended link waits before the next attempt: a refused advertiser cannot
            # keep the radio busy; a genuine device is back after the pause.
            self.refused_until[addr] = time.monotonic() + self.retry_after
            self.links.pop(addr, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.disconnect()

    async def _secure_link(self, conn: Connection, addr: str) -> CentralTransport:
        """Pair (SC only), then find and subscribe to the Mamori characteristic."""
        peer = Peer(conn)
        try:
            await conn.pair()
        except Exception:  # SMP failure: the channel refuses the link by its mode
            mode = hci.pairing_mode(conn)
            if mode == hci.LEGACY:
                self.legacy_refused += 1
            return CentralTransport(peer, None, mode, addr, 23)
        mtu = await peer.request_mtu(ATT_MTU)
        await peer.discover_services([UUID(SERVICE_UUID)])
        services = peer.get_services_by_uuid(UUID(SERVICE_UUID))
        chars = await peer.discover_characteristics([UUID(CHAR_UUID)], services[0]) \
            if services else []
        if not chars:
            raise StateError("peer %s advertises the Mamori service but has no channel" % addr)
        transport = CentralTransport(peer, chars[0], hci.pairing_mode(conn), addr, mtu)
        await peer.subscribe(chars[0], transport.value_received)
        return transport
