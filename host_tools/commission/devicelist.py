"""The devices file of `mamori commission`: which devices the house gets (JSON or TOML).

    {"devices": [
      {"id": "front-door", "maker": "Acme", "model": "Lock 2", "transport": "ip",
       "actions": ["lock", "unlock"]},
      {"id": "porch", "maker": "Acme", "model": "Motion 1", "transport": "zigbee",
       "ieee": "00:12:4b:00:01:02:03:04"}
    ]}

or the same as TOML (``[[devices]]`` tables). ``actions`` are what the service platform may ask
of the device (signed into the bundle's ACL; default: nothing). ``ieee`` is the EUI-64 of a
Zigbee device. Unknown keys and wrong types are refused by name with the nearest valid one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware.common.policyfile import Field, check_keys, parse
from firmware.core.errors import ConfigError
from provisioning.site import TRANSPORTS, check_id

MAX_DEVICES = 1000


def _id(value: str) -> str:
    try:
        check_id(value, "device id")
    except ConfigError as exc:
        return exc.message
    return ""


def _text(value: str) -> str:
    return "" if value.strip() and len(value) <= 64 else "must be 1 to 64 characters"


def _transport(value: str) -> str:
    return "" if value in TRANSPORTS else "must be one of " + ", ".join(TRANSPORTS)


def _actions(value: list[Any]) -> str:
    ok = all(isinstance(a, str) and a and len(a) <= 32 and a != "*" for a in value)
    return "" if ok else "must be action names (no '*': grant each action)"


DEVICE = {
    "id": Field(str, required=True, check=_id),
    "maker": Field(str, required=True, check=_text),
    "model": Field(str, required=True, check=_text),
    "transport": Field(str, required=True, check=_transport, what="ip, ble or zigbee"),
    "actions": Field(list, default=[], check=_actions, what="a list of action names"),
    "ieee": Field(str, default="", what="the EUI-64, e.g. 00:12:4b:00:01:02:03:04"),
}
TOP = {"devices": Field(list, required=True, what="a list of device tables")}


@dataclass(frozen=True)
class Device:
    """One device the house gets."""

    id: str
    maker: str
    model: str
    transport: str
    actions: list[str] = field(default_factory=list)
    ieee: str = ""


def load(path: Path) -> list[Device]:
    """Read and check the devices file; errors name the file, the device and the key."""
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("no devices file here", source,
                          hint="list the devices (id, maker, model, transport) in a JSON or "
                               "TOML file; see `mamori commission --help`")
    except OSError as exc:
        raise ConfigError("cannot be read: %s" % (exc.strerror or exc), source)
    if path.suffix == ".toml":
        try:
            doc = check_keys(tomllib.loads(raw.decode("utf-8")), TOP, source)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError("is not valid TOML: %s" % exc, source)
    else:
        doc = parse(raw, TOP, source)
    items = doc["devices"]
    if not 1 <= len(items) <= MAX_DEVICES:
        raise ConfigError("must list 1 to %d devices" % MAX_DEVICES, source, "devices")
    out: list[Device] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = "devices[%d]" % i
        if not isinstance(item, dict):
            raise ConfigError("must be a table with id, maker, model and transport", source,
                              where)
        d = check_keys(item, DEVICE, source, where)
        if d["id"] in seen:
            raise ConfigError("lists device %r twice" % d["id"], source, where + ".id")
        seen.add(d["id"])
        out.append(Device(d["id"], d["maker"], d["model"], d["transport"],
                          list(d["actions"]), d["ieee"]))
    return out
