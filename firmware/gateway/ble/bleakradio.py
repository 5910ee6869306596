"""BLE radio for Linux boards: bleak as GATT client, behind the ``BleTransport`` seam (CPython).

Scans for peripherals advertising the Mamori service, connects to each new one, and hands the
link to the BLE service as a ``BleakTransport``. The link must be bonded with LE Secure
Connections: BlueZ is expected in Secure-Connections-only mode (``btmgmt sc only``); this is
read from ``btmgmt info`` and a link is reported as legacy otherwise, so the channel refuses it.
Not exercised by the test suite (no radio); the channel, the service and the sim radio are.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from typing import Any

from firmware.common.ble.gatt import CHAR_UUID, SERVICE_UUID, SegmentedTransport
from firmware.core import blelink
from firmware.core.errors import StateError
from firmware.gateway.ble.service import LinkHandler

SCAN_PERIOD = 10.0


class BleakTransport(SegmentedTransport):
    """bleak client adapter: segmented GATT writes out, notifications in (as the hci backend)."""

    def __init__(self, client: Any, char_uuid: str, pairing_mode: str) -> None:
        super().__init__(pairing_mode, str(getattr(client, "address", "ble")),
                         int(getattr(client, "mtu_size", 23)))
        self.client = client
        self.char_uuid = char_uuid

    async def _send_value(self, value: bytes) -> None:
        await self.client.write_gatt_char(self.char_uuid, value, response=True)

    async def subscribe(self) -> None:
        """Receive the peer's notifications."""
        await self.client.start_notify(self.char_uuid,
                                       lambda _c, d: self.value_received(bytes(d)))


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def bluez_pairing_mode() -> str:
    """``le-secure-connections`` when BlueZ runs Secure-Connections-only, else ``legacy``."""
    tool = shutil.which("btmgmt")
    if tool is None:
        return "unknown"
    try:
        out = subprocess.run([tool, "info"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in out.splitlines():
        if line.strip().startswith("current settings:"):
            return blelink.SECURE_PAIRING if "sc-only" in line or "secure-conn" in line \
                else "legacy"
    return "unknown"


class BleakRadio:
    """Connects to advertising Mamori peripherals and serves each link."""

    kind = "bleak"

    def __init__(self, adapter: str = "") -> None:
        self.adapter = adapter  # e.g. hci0; "" lets BlueZ pick
        self.on_link: LinkHandler | None = None
        self.state = "down"
        self.clients: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self, on_link: LinkHandler) -> None:
        """Check that bleak is importable, then scan in the background."""
        try:
            import bleak  # noqa: F401
        except ImportError:
            raise StateError("BLE radio library not installed (bleak)", "pip install bleak")
        self.on_link = on_link
        self._task = asyncio.create_task(self._scan_loop())
        self.state = "scanning"

    async def stop(self) -> None:
        """Stop scanning and disconnect every peripheral."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for client in list(self.clients.values()):
            with contextlib.suppress(Exception):
                await client.disconnect()
        self.state = "down"

    def status(self) -> dict[str, Any]:
        """Scanner state and connected peripherals."""
        return {"radio": self.kind, "backend": "bluez", "library": "bleak",
                "version": _version("bleak"), "state": self.state,
                "controller": {"state": self.state, "adapter": self.adapter or "default",
                               "pairing": bluez_pairing_mode()},
                "links": len(self.clients)}

    async def _scan_loop(self) -> None:
        from bleak import BleakClient, BleakScanner

        while True:
            try:
                extra: dict[str, Any] = {"adapter": self.adapter} if self.adapter else {}
                found = await BleakScanner.discover(
                    timeout=SCAN_PERIOD, service_uuids=[SERVICE_UUID], **extra)
            except Exception as exc:  # adapter missing or powered off
                self.state = "error: %s" % exc.__class__.__name__
                await asyncio.sleep(SCAN_PERIOD)
                continue
            self.state = "scanning"
            for dev in found:
                if dev.address in self.clients:
                    continue
                client = BleakClient(dev, disconnected_callback=self._gone, **extra)
                try:
                    await client.connect()
                    with contextlib.suppress(Exception):
                        await client.pair(protection_level=3)  # encrypted + authenticated
                except Exception as exc:  # out of range, refused: try again next scan
                    self.state = "scanning (last connect failed: %s)" % exc.__class__.__name__
                    continue
                self.clients[dev.address] = client
                assert self.on_link is not None
                transport = BleakTransport(client, CHAR_UUID, bluez_pairing_mode())
                try:
                    await transport.subscribe()
                except Exception as exc:  # no Mamori characteristic: not ours after all
                    self.state = "scanning (last subscribe failed: %s)" % exc.__class__.__name__
                    continue
                asyncio.create_task(self.on_link(transport))

    def _gone(self, client: Any) -> None:
        for addr, c in list(self.clients.items()):
            if c is client:
                del self.clients[addr]
