"""zigpy ControllerApplication for Mamori: install-code-only joins, default TC key refused.

``MamoriZigbeeApp`` runs on a radio object (``FakeRadio`` in tests and on the sim board; a real
radio library's transport otherwise) that acts as trust centre: it reports each join attempt with
the link key the device used. Joins go through ``JoinPolicy``; a refused node is removed and
reported as a ``rogue.zigbee`` alert. Plain ``permit()`` (open joining) is refused.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import zigpy.application
import zigpy.config as zconf
import zigpy.types as t

from firmware.common.installcode import DEFAULT_TC_LINK_KEY
from firmware.core.errors import ConfigError, PolicyError
from firmware.core.events import Event
from firmware.gateway.zigbee.joinpolicy import JoinPolicy


class FakeRadio:
    """A simulated coordinator radio: the trust centre's key table and join attempts."""

    def __init__(self) -> None:
        self.app: MamoriZigbeeApp | None = None
        self.link_keys: dict[str, bytes] = {}
        self.removed: list[str] = []
        self.sent: list[Any] = []

    def device_joins(self, ieee: str, nwk: int, key_used: bytes | None) -> bool:
        """A device tries to join with the given link key; True when it became a member."""
        assert self.app is not None
        return self.app.radio_join(ieee, nwk, key_used)


class MamoriZigbeeApp(zigpy.application.ControllerApplication):
    """zigpy application whose only way in is an install-code window."""

    def __init__(self, config: dict, radio: FakeRadio, emit: Callable[[Event], Any]) -> None:
        nwk = dict(config.get(zconf.CONF_NWK, {}))
        tc_key = nwk.get(zconf.CONF_NWK_TC_LINK_KEY)
        if tc_key is None:
            nwk[zconf.CONF_NWK_TC_LINK_KEY] = t.KeyData(secrets.token_bytes(16))
        elif bytes(t.KeyData.convert(tc_key) if isinstance(tc_key, str)
                   else t.KeyData(tc_key)) == DEFAULT_TC_LINK_KEY:
            raise ConfigError("the public default trust-centre link key is not allowed",
                              "zigbee", "network.tc_link_key")
        super().__init__(dict(config, **{zconf.CONF_NWK: nwk}))
        if bytes(self.config[zconf.CONF_NWK][zconf.CONF_NWK_TC_LINK_KEY]) == DEFAULT_TC_LINK_KEY:
            raise ConfigError("the public default trust-centre link key is not allowed")
        self.radio = radio
        radio.app = self
        self.emit = emit
        self.policy = JoinPolicy(emit)

    # -- Mamori API ----------------------------------------------------------------------
    async def open_join_window(self, creds: dict, seconds: int = 120) -> None:
        """Let the device of these Zigbee credentials join with its install code."""
        if creds.get("transport") != "zigbee":
            raise ConfigError("credentials are not for a Zigbee device")
        key = self.policy.open_window(creds["device_id"], creds["ieee"],
                                      bytes.fromhex(creds["install_code"]), seconds)
        await self.permit_with_link_key(t.EUI64.convert(creds["ieee"]), t.KeyData(key), seconds)

    def radio_join(self, ieee: str, nwk: int, key_used: bytes | None) -> bool:
        """Called by the radio for each join attempt."""
        if not self.policy.decide(ieee, key_used):
            self.radio.removed.append(str(ieee).lower())
            return False
        self.handle_join(t.NWK(nwk), t.EUI64.convert(ieee), t.NWK(0))
        return True

    async def permit(self, time_s: int = 60, node: Any = None) -> None:
        """Open joining is refused: use open_join_window with the device's install code."""
        raise PolicyError("open joining is disabled", "use an install-code join window")

    # -- radio plumbing (fake radio) -----------------------------------------------------
    async def connect(self) -> None:
        """Nothing to open on the fake radio."""

    async def disconnect(self) -> None:
        """Nothing to close on the fake radio."""

    async def start_network(self) -> None:
        """The fake network is always formed."""

    async def force_remove(self, dev: Any) -> None:
        """Drop a device from the network."""
        self.radio.removed.append(str(dev.ieee).lower())

    async def add_endpoint(self, descriptor: Any) -> None:
        """Endpoints are not modelled."""

    async def permit_ncp(self, time_s: int = 60) -> None:
        """Open joining on the radio is never used."""
        raise PolicyError("open joining is disabled")

    async def permit_with_link_key(self, node: Any, link_key: Any, time_s: int = 60) -> None:
        """Install the device's link key in the trust centre's table."""
        self.radio.link_keys[str(node).lower()] = bytes(link_key)

    async def reset_network_info(self) -> None:
        """Forget the network."""

    async def send_packet(self, packet: Any) -> None:
        """Record outgoing packets."""
        self.radio.sent.append(packet)

    async def write_network_info(self, *, network_info: Any, node_info: Any) -> None:
        """Not persisted on the fake radio."""

    async def load_network_info(self, *, load_devices: bool = False) -> None:
        """Nothing stored on the fake radio."""
