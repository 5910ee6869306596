"""Shared glue for the bumble host stack (controllers driven over HCI: UART, USB, virtual).

Both the gateway (central) and the device agent (peripheral) run bumble's host on a controller
reached through an HCI transport named like bumble's (``serial:/dev/ttyAMA0,1000000``,
``usb:0``, ``hci-socket:0``...). Pairing is LE Secure Connections only: ``ScOnlySession`` answers
a legacy pairing request or response with "authentication requirements" and marks the link, so
the channel refuses it and the gateway raises the refusal as a rogue event.
"""

from __future__ import annotations

import secrets
from typing import Any

from bumble import pairing, smp
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.hci import Address
from bumble.host import Host

from firmware.common.ble.gatt import SERVICE_UUID
from firmware.core import blelink
from firmware.core.errors import StateError

LEGACY = "legacy"
UNPAIRED = "unpaired"
REFUSAL_ATTR = "mamori_refusal"


def library_version() -> str:
    """The installed bumble version."""
    from importlib.metadata import version

    return version("bumble")


async def open_host(spec: str) -> tuple[Host, Any]:
    """A bumble Host on the controller behind an HCI transport spec; (host, transport)."""
    from bumble.transport import open_transport

    try:
        transport = await open_transport(spec)
    except Exception as exc:  # bumble raises its own errors, OSError, ValueError...
        raise StateError("cannot open the BLE controller at %r: %s" % (spec, exc),
                         "check [radios.ble] hci_transport in the board profile and the "
                         "controller's cable/power")
    return Host(transport.source, transport.sink), transport


def random_static_address() -> Address:
    """A fresh random static address (the two top bits set)."""
    raw = bytearray(secrets.token_bytes(6))
    raw[5] |= 0xC0
    return Address(bytes(raw), Address.RANDOM_DEVICE_ADDRESS)


class ScOnlySession(smp.Session):
    """An SMP session that refuses legacy pairing in either role (Secure Connections only)."""

    def _refuse_legacy(self, auth_req: int) -> bool:
        if auth_req & smp.AuthReq.SC:
            return False
        setattr(self.connection, REFUSAL_ATTR, LEGACY)
        self.send_pairing_failed(smp.ErrorCode.AUTHENTICATION_REQUIREMENTS)
        return True

    async def on_smp_pairing_request_command_async(
            self, command: smp.SMP_Pairing_Request_Command) -> None:
        """Responder: a legacy request is refused before any key is derived."""
        if not self._refuse_legacy(command.auth_req):
            await super().on_smp_pairing_request_command_async(command)

    def on_smp_pairing_response_command(self,
                                        command: smp.SMP_Pairing_Response_Command) -> None:
        """Initiator: a peer that answers without Secure Connections is refused."""
        if not self._refuse_legacy(command.auth_req):
            super().on_smp_pairing_response_command(command)


def secure_device(device: Device, sc: bool = True) -> Device:
    """Make a bumble device pair with LE Secure Connections only (``sc=False``: legacy, tests)."""
    if sc:
        device.smp_session_proxy = ScOnlySession
    device.pairing_config_factory = lambda _c: pairing.PairingConfig(
        sc=sc, mitm=False, bonding=True,
        delegate=pairing.PairingDelegate(pairing.PairingDelegate.NO_OUTPUT_NO_INPUT))
    return device


def pairing_mode(connection: Connection) -> str:
    """The channel's pairing mode for a link: Secure Connections, legacy, or never paired."""
    if getattr(connection, REFUSAL_ATTR, "") == LEGACY:
        return LEGACY
    if not connection.is_encrypted:
        return UNPAIRED
    return blelink.SECURE_PAIRING if connection.sc else LEGACY


def advertising_data(name: str) -> bytes:
    """Advertise the Mamori service (and a short name)."""
    return bytes(AdvertisingData([
        (AdvertisingData.COMPLETE_LOCAL_NAME, name.encode()[:20]),
        (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
         bytes(UUID(SERVICE_UUID)))]))


def advertises_mamori(data: AdvertisingData) -> bool:
    """True when an advertisement lists the Mamori service."""
    want = UUID(SERVICE_UUID)
    for kind in (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
                 AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS):
        for uuid in data.get(kind) or []:
            if uuid == want:
                return True
    return False
