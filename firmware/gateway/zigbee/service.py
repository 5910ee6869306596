"""Zigbee in the running gateway: the install-code-only zigpy application on the board's radio.

On the sim board the radio is a simulated coordinator (``SimZigbeeRadio``); on a board with a
Zigbee coordinator (``[radios.zigbee] radio_type``) the radio library's own application runs it
(``Coordinator``); when it cannot start (library missing, dongle absent, another network on it)
the service reports why and the rest of the gateway runs on.
The installer opens the one-device join window with ``mamori-gateway zigbee permit`` (control
command ``zigbee.permit``): the device's site-signed record is verified (site, expiry,
revocation, allowlist) before its install-code key reaches the trust centre. Joined devices are
registered with liveness (transport ``zigbee``) and remembered in ``zigbee/devices.json``;
every other join is refused and reported as a ``rogue.zigbee`` alert by the join policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import secrets
import time
from typing import Any

from cryptography import x509

from firmware.common.boardprofile import Board
from firmware.common.signeddoc import verify_doc
from firmware.core import schema
from firmware.core.errors import AuthError, ConfigError, IntegrityError, MamoriError, StateError
from firmware.core.events import Event
from firmware.core.hello import MAX_INTERVAL, MIN_INTERVAL
from firmware.gateway.identity.install import IDENTITY, installed_identity, write_file
from firmware.gateway.runtime.control import ControlService
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.zigbee.app import FakeRadio, MamoriZigbeeApp
from firmware.gateway.zigbee.coordinator import Coordinator
from firmware.gateway.zigbee.joinpolicy import MAX_WINDOW, norm_ieee

RECORD_KIND = "mamori-zigbee-device"
REGISTRY = "zigbee/devices.json"
DEFAULT_INTERVAL = 60.0
LINK_MODE = "install-code-link-key"
class SimZigbeeRadio(FakeRadio):
    """The sim board's coordinator: joins and reports from simulated devices."""

    kind = "sim"

    def report(self, ieee: str) -> bool:
        """A joined device sends a frame (what a real radio's packet_received records)."""
        assert self.app is not None
        try:
            dev = self.app.get_device(ieee=_eui64(ieee))
        except KeyError:
            return False
        dev.last_seen = time.time()
        return True


def _eui64(ieee: str) -> Any:
    import zigpy.types as t

    return t.EUI64.convert(ieee)


def radio_for_board(board: Board) -> SimZigbeeRadio | None:
    """The sim board's coordinator, None for a real one, or StateError when there is none."""
    zb = board.radios.zigbee
    if not zb:
        raise StateError("this board has no Zigbee radio")
    if zb.serial_port.startswith("sim://"):
        return SimZigbeeRadio()
    return None


class ZigbeeService(Service):
    """Runs MamoriZigbeeApp; opens install-code join windows; tracks joined devices."""

    name = "zigbee"

    def __init__(self, gw: Gateway, control: ControlService | None = None,
                 radio: FakeRadio | None = None, poll: float = 1.0) -> None:
        super().__init__(gw)
        self.radio = radio
        self.poll = poll
        self.app: MamoriZigbeeApp | Coordinator | None = None
        self.error = ""
        self.pending: dict[str, dict[str, Any]] = {}
        self.joined: dict[str, dict[str, Any]] = {}
        self._last: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.coordinator: Coordinator | None = None
        if control is not None:
            control.register("zigbee.permit", self._permit_command)
            control.register("zigbee.sim-join", self._sim_join_command)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Bring the radio and the zigpy application up (or report why not)."""
        try:
            radio = self.radio or radio_for_board(self.gw.board)
            zb = self.gw.board.radios.zigbee
            if radio is not None:
                self.app = MamoriZigbeeApp(
                    {"device": {"path": zb.serial_port if zb else "sim://zigbee"},
                     "database_path": None}, radio, self.gw.emit)
                self.radio = radio
            else:
                if zb is None:  # radio_for_board refuses such a board; for the type checker
                    raise StateError("this board has no Zigbee radio")
                self.coordinator = Coordinator(zb, self.gw.state_dir,
                                               self.gw.emit, self.gw.board)
                await self.coordinator.start()
                self.app = self.coordinator
        except MamoriError as exc:
            self.error = str(exc)
            self.gw.emit(Event("zigbee.unavailable", "warning", "zigbee", action="start",
                               result="radio down", reason=exc.message))
            return
        self.app.add_listener(self)
        self._load_registry()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        """Stop watching and drop zigpy's background work."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.coordinator is not None:
            await self.coordinator.stop()
        elif self.app is not None:
            for dev in list(self.app.devices.values()):
                with contextlib.suppress(Exception):
                    dev.cancel_initialization()  # ZDO interview
            self.app.policy.close()

    def status(self) -> dict[str, Any]:
        """Radio state, join window, joined devices, rogue joins."""
        radio = self._radio_status()
        if self.app is None:
            return dict(radio, state="unavailable", error=self.error)
        w = self.app.policy.window
        return {**radio, "state": "up",
                "join_window": {"device": w["device_id"],
                                "remaining_s": round(w["until"] - self.app.policy.clock(), 1)}
                if w else None,
                "devices": sorted(d["id"] for d in self.joined.values()),
                "rogue_joins": self.app.policy.rogues, "encrypted": True, "mode": LINK_MODE}

    def _radio_status(self) -> dict[str, Any]:
        """Backend, library and version, controller state."""
        if self.coordinator is not None:
            return dict(self.coordinator.status(), radio=self.coordinator.kind)
        from importlib.metadata import version

        return {"radio": getattr(self.radio, "kind", "none"), "backend": "sim",
                "library": "zigpy", "version": version("zigpy"),
                "controller": {"state": "up" if self.app is not None else "down",
                               "port": "sim://zigbee"}}

    # -- join windows --------------------------------------------------------------------
    def check_credentials(self, creds: dict[str, Any]) -> dict[str, Any]:
        """The identity of Zigbee credentials whose site-signed record is valid here."""
        from firmware.gateway.identity.admission import DeviceAuthorizer, Revocation

        if not isinstance(creds, dict) or creds.get("transport") != "zigbee":
            raise ConfigError("credentials are not for a Zigbee device")
        for key in ("device_id", "ieee", "install_code", "record"):
            if not creds.get(key):
                raise ConfigError("Zigbee credentials are missing %s" % key)
        ca = x509.load_pem_x509_certificate(
            (self.gw.state_dir / IDENTITY / "site-ca.pem").read_bytes())
        try:
            p = verify_doc(ca, creds["record"], RECORD_KIND)
        except IntegrityError as exc:
            raise AuthError("Zigbee device record refused: %s" % exc.message)
        meta = installed_identity(self.gw.state_dir)
        if p.get("site_id") != meta["site_id"]:
            raise AuthError("Zigbee device record is from another site")
        if p.get("device_id") != creds["device_id"] or norm_ieee(p.get("ieee")) != norm_ieee(
                creds["ieee"]):
            raise AuthError("Zigbee credentials do not match their signed record")
        if datetime.datetime.fromisoformat(str(p["not_after"])) < datetime.datetime.now(
                datetime.UTC):
            raise AuthError("Zigbee device record expired")
        Revocation(self.gw.state_dir).check(int(p["serial"]))
        policy = DeviceAuthorizer(self.gw.state_dir)
        policy.check_model(str(p["maker"]), str(p["model"]), "zigbee")
        return {"id": p["device_id"], "ieee": norm_ieee(p["ieee"]), "maker": p["maker"],
                "model": p["model"], "serial": str(p["serial"]), "level": policy.level}

    async def permit(self, creds: dict[str, Any], seconds: int = 120,
                     interval: float = DEFAULT_INTERVAL) -> dict[str, Any]:
        """Open the join window for the device of these credentials (install code only)."""
        if self.app is None:
            raise StateError("Zigbee is not available: " + (self.error or "not started"))
        if isinstance(seconds, bool) or not isinstance(seconds, int) or \
                not 1 <= seconds <= MAX_WINDOW:
            raise ConfigError("the join window lasts 1..%d seconds" % MAX_WINDOW)
        ident = self.check_credentials(creds)
        ident["interval"] = min(max(float(interval), 1.0), 3600.0)
        self.pending = {ident["ieee"]: ident}
        await self.app.open_join_window(creds, seconds)
        return {"device": ident["id"], "ieee": ident["ieee"], "seconds": seconds}

    async def _permit_command(self, params: dict[str, Any]) -> dict[str, Any]:
        creds = params.get("credentials")
        if not isinstance(creds, dict):
            raise ConfigError("zigbee.permit needs the device's credentials")
        interval = schema.check(params.get("interval", DEFAULT_INTERVAL),
                                schema.Num(MIN_INTERVAL, MAX_INTERVAL), "zigbee.permit interval")
        return await self.permit(creds, params.get("seconds", 120), float(interval))  # type: ignore[arg-type]

    async def _sim_join_command(self, params: dict[str, Any]) -> dict[str, Any]:
        """Sim board only: a device tries to join (how the demo shows a rogue join)."""
        if not isinstance(self.radio, SimZigbeeRadio):
            raise StateError("simulated joins exist only on the sim board")
        ieee = str(params.get("ieee", ""))
        try:
            key = bytes.fromhex(str(params["key"])) if params.get("key") else None
            _eui64(ieee)
        except (ValueError, KeyError):
            raise ConfigError("ieee must be an EUI-64 and key hex")
        joined = self.radio.device_joins(ieee, 0x1000 + secrets.randbelow(0xE000), key)
        policy = getattr(self.app, "policy", None)
        why = "" if joined else str(getattr(policy, "last_refusal", ""))
        return {"ieee": norm_ieee(ieee), "joined": joined, "reason": why}

    # -- zigpy listener ------------------------------------------------------------------
    def device_joined(self, device: Any) -> None:
        """zigpy: a device passed the join policy and joined the network."""
        ieee = norm_ieee(device.ieee)
        ident = self.pending.pop(ieee, None) or self.joined.get(ieee)
        if ident is None:  # cannot happen: the policy admits only the windowed device
            return
        self.joined[ieee] = ident
        self._save_registry()
        self._register(ident)
        self._last[ieee] = device.last_seen or 0.0
        self.gw.device_seen(ident["id"])

    def _register(self, ident: dict[str, Any]) -> None:
        self.gw.register_device(ident["id"], "zigbee", float(ident.get("interval",
                                                                      DEFAULT_INTERVAL)),
                                int(ident.get("level", 2)), maker=ident["maker"],
                                model=ident["model"], ieee=ident["ieee"], peer="zigbee",
                                authenticated=True, encrypted=True, mode=LINK_MODE,
                                pairing="install-code", serial=str(ident.get("serial", "")))

    def close_device(self, device_id: str, reason: str) -> bool:
        """Drop a joined device from the network and the registry (revocation hook)."""
        for ieee, ident in list(self.joined.items()):
            if ident.get("id") == device_id:
                del self.joined[ieee]
                self._save_registry()
                if self.app is not None:
                    with contextlib.suppress(KeyError):
                        self.app.devices.pop(_eui64(ieee))  # its frames are no longer accepted
                self.gw.emit(Event("device.session_closed", "notice", "zigbee",
                                   principal=device_id, action="disconnect", target=device_id,
                                   result="closed", reason=reason))
                return True
        return False

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            assert self.app is not None
            for ieee, ident in list(self.joined.items()):
                try:
                    seen = self.app.get_device(ieee=_eui64(ieee)).last_seen
                except KeyError:
                    continue
                if seen is not None and seen > self._last.get(ieee, 0.0):
                    self._last[ieee] = seen
                    self.gw.device_seen(ident["id"])

    # -- registry ------------------------------------------------------------------------
    def _load_registry(self) -> None:
        path = self.gw.state_dir / REGISTRY
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            self.gw.emit(Event("zigbee.registry", "warning", "zigbee", result="ignored",
                               reason="%s is not JSON" % REGISTRY))
            return
        for ident in doc.get("devices", []):
            self.joined[norm_ieee(ident["ieee"])] = ident
            self._register(ident)

    def _save_registry(self) -> None:
        doc = {"devices": sorted(self.joined.values(), key=lambda d: str(d["id"]))}
        write_file(self.gw.state_dir / REGISTRY, json.dumps(doc, indent=2).encode(),
                   secret=False)
