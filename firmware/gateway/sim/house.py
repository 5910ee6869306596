"""The sim board's demo house, as the installer left it (CPython).

`mamori demo` (the installer's side, on the PC) writes ``house.json`` beside the site it made:
the installation bundle, the platform broker's certificates and the simulated devices with
their credential files. The sim board reads that list to run the devices and the broker; it
never provisions anything itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.core import strictjson
from firmware.core.errors import ConfigError, ProtocolError
from firmware.core.ids import valid_id
from firmware.core.schema import nearest

HOUSE_FORMAT = "mamori-sim-house/1"
TRANSPORTS = ("ip", "ble", "zigbee")
MAX_DEVICES = 1000
MAX_FILE = 1024 * 1024
_DEVICE_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str, "kind": str, "transport": str, "maker": str, "model": str,
    "interval": (int, float), "level": int, "credentials": str}
_PLATFORM_KEYS = ("ca", "cert", "key", "crl")


@dataclass
class DemoHouse:
    """Where the demo's installer-side files are, and the devices it simulates."""

    site_dir: Path
    gateway: str
    bundle: Path
    platform: dict[str, Path]
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    def by_transport(self, *transports: str) -> dict[str, dict[str, Any]]:
        """The simulated devices that use one of these transports."""
        return {k: v for k, v in self.devices.items() if v["transport"] in transports}


def _path(site: Path, value: Any, where: str, source: str) -> Path:
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in value:
        raise ConfigError("must be a relative path inside the demo site", source, where)
    return site / value


def _device(site: Path, raw: Any, i: int, source: str) -> dict[str, Any]:
    where = "devices[%d]" % i
    if not isinstance(raw, dict):
        raise ConfigError("must be a table", source, where)
    unknown = sorted(str(k) for k in set(raw) - set(_DEVICE_KEYS))
    if unknown:
        near = nearest(unknown[0], list(_DEVICE_KEYS))
        raise ConfigError("unknown key", source, "%s.%s" % (where, unknown[0][:64]),
                          hint="did you mean '%s'?" % near if near else "")
    for key, kind in _DEVICE_KEYS.items():
        if key not in raw:
            raise ConfigError("is missing", source, "%s.%s" % (where, key))
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError("has the wrong type", source, "%s.%s" % (where, key))
    if not valid_id(raw["id"]):
        raise ConfigError("is not a valid device id", source, where + ".id")
    if raw["transport"] not in TRANSPORTS:
        raise ConfigError("must be one of " + ", ".join(TRANSPORTS), source, where + ".transport")
    if not 0.2 <= raw["interval"] <= 3600:  # NaN fails this too
        raise ConfigError("must be between 0.2 and 3600 seconds", source, where + ".interval")
    dev = dict(raw)
    dev["interval"] = float(raw["interval"])
    dev["credentials"] = _path(site, raw["credentials"], where + ".credentials", source)
    return dev


def load_house(path: Path) -> DemoHouse:
    """Read and check the installer's house list; errors name the file and the field."""
    path = Path(path)
    source = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise ConfigError("no demo house here", source,
                          hint="make it with `mamori demo --state-dir DIR` (or `make run`)")
    except OSError as exc:
        raise ConfigError("cannot read the demo house: %s" % (exc.strerror or exc), source)
    try:
        doc = strictjson.loads(raw, "demo house", 4, MAX_FILE)
    except ProtocolError as exc:
        raise ConfigError(exc.message, source)
    if not isinstance(doc, dict) or doc.get("format") != HOUSE_FORMAT:
        raise ConfigError("is not a %s file" % HOUSE_FORMAT, source, "format")
    site = path.parent
    platform = doc.get("platform")
    if not isinstance(platform, dict) or sorted(platform) != sorted(_PLATFORM_KEYS):
        raise ConfigError("must name %s" % ", ".join(_PLATFORM_KEYS), source, "platform")
    devices = doc.get("devices")
    if not isinstance(devices, list) or len(devices) > MAX_DEVICES:
        raise ConfigError("must be a list of at most %d devices" % MAX_DEVICES, source,
                          "devices")
    gateway = doc.get("gateway")
    if not valid_id(gateway):
        raise ConfigError("must be the gateway id", source, "gateway")
    house = DemoHouse(site, str(gateway), _path(site, doc.get("bundle"), "bundle", source),
                      {k: _path(site, v, "platform." + k, source) for k, v in platform.items()})
    for i, raw in enumerate(devices):
        dev = _device(site, raw, i, source)
        if dev["id"] in house.devices:
            raise ConfigError("lists device %r twice" % dev["id"], source, "devices[%d]" % i)
        house.devices[dev["id"]] = dev
    return house
