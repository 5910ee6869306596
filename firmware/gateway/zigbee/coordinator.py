"""A real Zigbee coordinator: the radio library's own zigpy ``ControllerApplication``.

``[radios.zigbee] radio_type`` picks the library: ``znp`` (TI Z-Stack, zigpy-znp), ``ezsp``
(Silicon Labs EmberZNet, bellows), ``deconz`` (dresden elektronik, zigpy-deconz). Mamori's
admission policy rides on zigpy's public API: a one-device window installs that device's
install-code link key (``permit_with_link_key``) and permits joining for the window only; every
join the trust centre reports goes through ``JoinPolicy``; a refused device is alerted
(``rogue.zigbee``) and asked to leave (``remove``: ZDO Mgmt_Leave_req). The network key is
fresh random bytes, the configured trust-centre link key too (never ``ZigBeeAlliance09``; Z-Stack
fixes its global key at build time, so joins there are install-code only during a window). The
library's network backup (keys, frame counters, devices) is kept encrypted in the key store and
restored onto a blank coordinator; a coordinator carrying another network is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import secrets
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board, ZigbeeRadio
from firmware.common.installcode import DEFAULT_TC_LINK_KEY
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.core.events import Event
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.zigbee.joinpolicy import JoinPolicy, norm_ieee

# radio type -> (module with the library's ControllerApplication, distribution name)
LIBRARIES = {"znp": ("zigpy_znp.zigbee.application", "zigpy-znp"),
             "ezsp": ("bellows.zigbee.application", "bellows"),
             "deconz": ("zigpy_deconz.zigbee.application", "zigpy-deconz")}
DEFAULT_BAUDRATE = {"znp": 115200, "ezsp": 115200, "deconz": 38400}
BACKUP_KEY = "zigbee-network-backup"
DEFAULT_CHANNEL = 15
STARTUP_TIMEOUT = 60.0
# Network keys every sniffer tries first: Zigbee2MQTT's documented default, the TC default.
WELL_KNOWN_NWK_KEYS = (bytes([1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 13]),
                       DEFAULT_TC_LINK_KEY)


def library_version(radio_type: str) -> str:
    """The installed version of the radio library for this radio type."""
    try:
        return version(LIBRARIES[radio_type][1])
    except PackageNotFoundError:
        return "not installed"


def app_class(radio_type: str) -> Any:
    """The radio library's ControllerApplication class (StateError when not installed)."""
    if radio_type not in LIBRARIES:
        raise ConfigError("unknown Zigbee radio type %r (known: %s)"
                          % (radio_type, ", ".join(LIBRARIES)), "board profile",
                          "radios.zigbee.radio_type")
    module, dist = LIBRARIES[radio_type]
    try:
        return importlib.import_module(module).ControllerApplication
    except ImportError:
        raise StateError("Zigbee radio library not installed (%s)" % dist,
                         "install the %s package to use this coordinator" % dist)


def app_config(radio_type: str, zb: ZigbeeRadio) -> dict[str, Any]:
    """zigpy configuration: the port, random keys, no zigpy database, no open-ended features."""
    import zigpy.config as zc
    import zigpy.types as t

    return {
        zc.CONF_DEVICE: {zc.CONF_DEVICE_PATH: zb.serial_port,
                         zc.CONF_DEVICE_BAUDRATE: zb.baudrate or DEFAULT_BAUDRATE[radio_type],
                         zc.CONF_DEVICE_FLOW_CONTROL: None},
        zc.CONF_NWK: {zc.CONF_NWK_CHANNEL: DEFAULT_CHANNEL,
                      zc.CONF_NWK_KEY: t.KeyData(secrets.token_bytes(16)),
                      zc.CONF_NWK_TC_LINK_KEY: t.KeyData(secrets.token_bytes(16))},
        zc.CONF_NWK_VALIDATE_SETTINGS: True,  # a swapped or re-flashed stick is refused
        zc.CONF_DATABASE: None,
        zc.CONF_NWK_BACKUP_ENABLED: False,  # Mamori keeps the backup, encrypted
        zc.CONF_TOPO_SCAN_ENABLED: False,
        zc.CONF_OTA: {zc.CONF_OTA_ENABLED: False},
    }


class Coordinator:
    """The library's application on the board's dongle, with Mamori's join policy attached."""

    def __init__(self, zb: ZigbeeRadio, state_dir: Path,
                 emit: Callable[[Event], Any], board: Board | None = None,
                 policy: JoinPolicy | None = None) -> None:
        self.radio_type = zb.radio_type
        self.zb = zb
        self.keystore = KeyStore(state_dir, board)
        self.emit = emit
        self.policy = policy or JoinPolicy(emit)
        self.kind = zb.radio_type
        self.state = "down"
        self.app: Any = None
        self.listener: Any = None
        self.left: list[str] = []
        self._window: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Open the radio, form or restore the network, check its keys, store the backup."""
        import zigpy.backups
        import zigpy.exceptions

        cls = app_class(self.radio_type)
        self.app = cls(app_config(self.radio_type, self.zb))
        saved = self._saved_backup()
        if saved is not None:
            self.app.backups.add_backup(zigpy.backups.NetworkBackup.from_dict(saved),
                                        suppress_event=True)
        self.state = "starting"
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                await self.app.startup(auto_form=True)
        except zigpy.exceptions.NetworkSettingsInconsistent:
            self.state = "refused"
            raise StateError("the coordinator on %s carries another network than the one "
                             "in the key store" % self.zb.serial_port,
                             "plug the gateway's own coordinator back in, or reset the "
                             "network deliberately")
        except (TimeoutError, OSError, zigpy.exceptions.ZigbeeException) as exc:
            self.state = "error"
            raise StateError("the Zigbee coordinator on %s did not start: %s"
                             % (self.zb.serial_port, exc.__class__.__name__),
                             "check the dongle, its port and radio_type in the board profile")
        key = bytes(self.app.state.network_info.network_key.key)
        if key in WELL_KNOWN_NWK_KEYS:
            self.state = "refused"
            await self.stop()
            raise StateError("the coordinator's network uses a publicly known network key",
                             "reset the coordinator so Mamori forms a network with a random "
                             "key")
        self.app.add_listener(self)
        self.state = "up"
        await self.save_backup()

    async def stop(self) -> None:
        """Close the window and the radio."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.policy.close()
        if self.app is not None:
            with contextlib.suppress(Exception):
                await self.app.shutdown(db=False)
        if self.state == "up":
            self.state = "down"

    def network_key(self) -> bytes:
        """The running network's key (for checks: never logged)."""
        return bytes(self.app.state.network_info.network_key.key)

    # -- backup --------------------------------------------------------------------------
    def _saved_backup(self) -> dict[str, Any] | None:
        if not self.keystore.has(BACKUP_KEY):
            return None
        try:
            doc = json.loads(self.keystore.get(BACKUP_KEY))
        except (ValueError, IntegrityError) as exc:
            self.emit(Event("zigbee.backup", "alert", "zigbee", action="restore",
                            result="ignored", reason="stored network backup unusable: %s"
                            % getattr(exc, "message", exc.__class__.__name__)))
            return None
        return doc if isinstance(doc, dict) else None

    async def save_backup(self) -> None:
        """Ask the library for its network backup and keep it encrypted in the key store."""
        backup = await self.app.backups.create_backup(load_devices=True)
        blob = json.dumps(backup.as_dict(), sort_keys=True).encode()
        self.keystore.put(BACKUP_KEY, blob, "Zigbee network backup (%s coordinator: network "
                          "key, frame counters, device keys)" % self.radio_type,
                          "AES-128 network key (zigpy backup JSON)", 128,
                          "formed on the coordinator with a random key", 825, replace=True)

    # -- windows -------------------------------------------------------------------------
    async def open_join_window(self, creds: dict[str, Any], seconds: int = 120) -> None:
        """Install the device's install-code link key and permit joining for the window."""
        import zigpy.types as t

        if creds.get("transport") != "zigbee":
            raise ConfigError("credentials are not for a Zigbee device")
        key = self.policy.open_window(creds["device_id"], creds["ieee"],
                                      bytes.fromhex(creds["install_code"]), seconds)
        self._close_radio_window()
        self._window = self._spawn(self.app.permit_with_link_key(
            t.EUI64.convert(creds["ieee"]), t.KeyData(key), seconds), "join window")

    def _close_radio_window(self) -> None:
        if self._window is not None and not self._window.done():
            self._window.cancel()  # the library restores its join mode on the way out
            self._spawn(self.app.permit(0), "permit 0")
        self._window = None

    def _spawn(self, coro: Any, what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.emit(Event("zigbee.radio", "warning", "zigbee", action=what,
                                result="failed", reason=repr(t.exception())[:200]))

        task.add_done_callback(done)
        return task

    # -- zigpy listener ------------------------------------------------------------------
    def add_listener(self, listener: Any) -> None:
        """Who hears about admitted devices (the Zigbee service)."""
        self.listener = listener

    def device_joined(self, device: Any) -> None:
        """zigpy: the trust centre let a device in; admit it or make it leave."""
        ieee = norm_ieee(device.ieee)
        if ieee in getattr(self.listener, "joined", {}):  # an installed device rejoining
            self.listener.device_joined(device)
            return
        # The radio checked the link key: during a window only the installed key opens it.
        if not self.policy.admit(ieee):
            self._spawn(self.app.remove(device.ieee), "leave request")
            return
        self._close_radio_window()
        if self.listener is not None:
            self.listener.device_joined(device)
        self._spawn(self.save_backup(), "backup")

    def device_left(self, device: Any) -> None:
        """zigpy: a device left the network."""
        self.left.append(norm_ieee(device.ieee))

    def get_device(self, ieee: Any = None) -> Any:
        """A device the library knows (KeyError otherwise)."""
        return self.app.get_device(ieee=ieee)

    @property
    def devices(self) -> dict[Any, Any]:
        """The library's device table."""
        return dict(self.app.devices) if self.app is not None else {}

    def status(self) -> dict[str, Any]:
        """Backend, library and version, controller state and network (no key material)."""
        doc: dict[str, Any] = {"backend": self.radio_type, "library": LIBRARIES[
            self.radio_type][1], "version": library_version(self.radio_type),
            "controller": {"state": self.state, "port": self.zb.serial_port}}
        if self.app is not None and self.state == "up":
            node, nwk = self.app.state.node_info, self.app.state.network_info
            doc["controller"].update(model=str(node.model or ""),
                                     firmware=str(node.version or ""), ieee=str(node.ieee),
                                     channel=int(nwk.channel), pan_id="0x%04x" % nwk.pan_id)
        return doc

