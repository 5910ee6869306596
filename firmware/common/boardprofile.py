"""The board profile as a typed, immutable object (CPython code only).

``firmware/core/boardspec.py`` defines and validates the profile on a plain dict (it must run on
MicroPython, so no dataclasses there). Everything on CPython gets a :class:`Board` instead: built
only from a dict that ``boardspec.validate`` accepted, so no caller needs ``.get(x, {})`` guards.
Field names are those of the TOML file (``cpu.class`` is ``Cpu.class_``); optional sections that
are absent are ``None`` (``wifi``, ``base_os_requires``, ``radios.zigbee``, ``radios.ble`` when
``false``) or empty (``usb_ports``), optional fields inside a table are ``None``.

``Board.raw`` keeps the validated dict, read-only (self-test evidence, tools that write
``board.toml``, JSON outputs); ``Board.source`` names the file it came from. A changed profile
(tests, benches, staging) is made with :meth:`Board.with_changes`, which validates again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from firmware.core import boardspec

SOURCE_KEY = "source"


def _freeze(value: Any) -> Any:
    """A read-only deep view: tables become mappingproxies, arrays tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    """A fresh plain (JSON-ready) copy of a frozen view."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class Cpu:
    class_: str
    arch: str
    cores: int


@dataclass(frozen=True)
class Memory:
    ram_kib: int


@dataclass(frozen=True)
class Storage:
    state_dir: str
    slots: tuple[str, ...]
    boot: str


@dataclass(frozen=True)
class Console:
    serial: str
    login_in_production: bool


@dataclass(frozen=True)
class Security:
    secure_element: str
    crypto_accel: tuple[str, ...]
    rtc: bool
    usb_repl_in_production: bool | None = None


@dataclass(frozen=True)
class Wifi:
    security: str


@dataclass(frozen=True)
class NetworkInterface:
    name: str
    role: str
    kind: str


@dataclass(frozen=True)
class UsbPort:
    path: str
    needed: bool
    purpose: str | None = None
    allow: str | None = None


@dataclass(frozen=True)
class BleRadio:
    backend: str
    hci_transport: str | None = None
    controller: str | None = None


@dataclass(frozen=True)
class ZigbeeRadio:
    radio_type: str
    serial_port: str
    baudrate: int | None = None
    dongle: str | None = None
    usb_port: str | None = None
    usb_id: str | None = None


@dataclass(frozen=True)
class Radios:
    ble: BleRadio | None = None
    zigbee: ZigbeeRadio | None = None


@dataclass(frozen=True)
class BaseOs:
    distribution: str
    python: str
    glibc: str
    packages: tuple[str, ...]
    commands: tuple[str, ...]


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    runtime: str
    cpu: Cpu
    memory: Memory
    storage: Storage
    network: tuple[NetworkInterface, ...]
    console: Console
    security: Security
    radios: Radios
    usb_ports: tuple[UsbPort, ...] = ()
    wifi: Wifi | None = None
    base_os_requires: BaseOs | None = None
    source: str = ""
    raw: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}),
                                   compare=False, hash=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = None) -> Board:
        """Validate DATA (a parsed profile) and build the board; ConfigError names the field."""
        data = copy.deepcopy(data)
        src = source if source is not None else str(data.get(SOURCE_KEY) or "<board>")
        boardspec.validate(data, src)
        if source is not None:
            data[SOURCE_KEY] = source
        return cls.from_validated(data)

    @classmethod
    def from_validated(cls, data: dict[str, Any]) -> Board:
        """Build from a dict ``boardspec.validate`` accepted (no second check here)."""
        cpu, sec, sto, con = data["cpu"], data["security"], data["storage"], data["console"]
        radios = data["radios"]
        ble, zig = radios["ble"], radios.get("zigbee")
        base = data.get("base_os_requires")
        return cls(
            name=data["name"], description=data["description"], runtime=data["runtime"],
            cpu=Cpu(class_=cpu["class"], arch=cpu["arch"], cores=cpu["cores"]),
            memory=Memory(ram_kib=data["memory"]["ram_kib"]),
            storage=Storage(state_dir=sto["state_dir"], slots=tuple(sto["slots"]),
                            boot=sto["boot"]),
            network=tuple(NetworkInterface(name=i["name"], role=i["role"], kind=i["kind"])
                          for i in data["network"]),
            console=Console(serial=con["serial"],
                            login_in_production=con["login_in_production"]),
            security=Security(secure_element=sec["secure_element"],
                              crypto_accel=tuple(sec["crypto_accel"]), rtc=sec["rtc"],
                              usb_repl_in_production=sec.get("usb_repl_in_production")),
            radios=Radios(
                ble=BleRadio(backend=ble["backend"], hci_transport=ble.get("hci_transport"),
                             controller=ble.get("controller")) if ble else None,
                zigbee=ZigbeeRadio(radio_type=zig["radio_type"], serial_port=zig["serial_port"],
                                   baudrate=zig.get("baudrate"), dongle=zig.get("dongle"),
                                   usb_port=zig.get("usb_port"), usb_id=zig.get("usb_id"))
                if zig is not None else None),
            usb_ports=tuple(UsbPort(path=p["path"], needed=p["needed"], purpose=p.get("purpose"),
                                    allow=p.get("allow")) for p in data.get("usb_ports", [])),
            wifi=Wifi(security=data["wifi"]["security"]) if "wifi" in data else None,
            base_os_requires=BaseOs(distribution=base["distribution"], python=base["python"],
                                    glibc=base["glibc"], packages=tuple(base["packages"]),
                                    commands=tuple(base["commands"]))
            if base is not None else None,
            source=str(data.get(SOURCE_KEY, "")),
            raw=_freeze(data),
        )

    def to_dict(self) -> dict[str, Any]:
        """A fresh plain copy of the validated profile (JSON-ready, safe to change)."""
        return dict(_thaw(self.raw))

    def with_changes(self, **top_level: Any) -> Board:
        """This profile with whole top-level keys replaced (plain TOML values), validated again.

        ``board.with_changes(network=[...])``; a value of ``None`` removes the key.
        """
        data = self.to_dict()
        for key, value in top_level.items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = copy.deepcopy(value)
        return Board.from_dict(data, self.source or "<board>")

    # Helpers for what many call sites compute the same way.

    @property
    def is_sim(self) -> bool:
        """The simulated board (loopback network, in-process radios, no real hardware)."""
        return self.name == "sim"

    @property
    def has_ab_slots(self) -> bool:
        """The profile names two A/B update slots."""
        return len(self.storage.slots) == 2

    def interfaces(self, role: str) -> list[str]:
        """Names of the network interfaces with ROLE (wan or lan), in profile order."""
        return [i.name for i in self.network if i.role == role]

    @property
    def needed_usb_ports(self) -> list[UsbPort]:
        """The USB ports the service needs (each names the device it allows)."""
        return [p for p in self.usb_ports if p.needed]

    @property
    def ble_backend(self) -> str:
        """The BLE backend, or "" when the board has no BLE."""
        return self.radios.ble.backend if self.radios.ble else ""
