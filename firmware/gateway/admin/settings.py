"""Gateway settings: schema, validation, installer locks and their drift manifest (R2-6, UK13).

Installer-locked settings are read-only to the owner role. The locked names and values are also
written to ``admin/locked.json`` under an HMAC whose key lives in the key store, so a value
changed behind the API's back (database edited, restored from an old copy) shows up as drift.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError
from firmware.gateway.identity.keystore import KeyStore

MANIFEST = "admin/locked.json"
MAC_KEY = "admin-settings-mac"
MANIFEST_FORMAT = "mamori-locked-settings/1"

# name -> declaration. "locked": installer-locked from the start.
SCHEMA: dict[str, dict[str, Any]] = {
    "device_name": {"type": "string", "max": 64, "default": "Mamori gateway"},
    "led_brightness": {"type": "integer", "min": 0, "max": 100, "default": 50},
    "timezone": {"type": "string", "max": 40, "pattern": r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+){0,2}$",
                 "default": "Asia/Tokyo"},
    "notify_language": {"type": "string", "enum": ["ja", "en"], "default": "ja"},
    "zigbee_channel": {"type": "integer", "min": 11, "max": 26, "default": 15, "locked": True},
    "alarm_dispatch": {"type": "boolean", "default": True, "locked": True},
    "sensor_report_interval_s": {"type": "integer", "min": 10, "max": 3600, "default": 60,
                                 "locked": True},
}


def validate(name: str, value: Any) -> Any:
    """The value if it fits the setting's declaration, else ConfigError (UK13)."""
    decl = SCHEMA.get(name)
    if decl is None:
        raise ConfigError("unknown setting", field=name)
    kind = decl["type"]
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ConfigError("must be true or false", field=name)
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("must be an integer", field=name)
        if not decl["min"] <= value <= decl["max"]:
            raise ConfigError("must be between %d and %d" % (decl["min"], decl["max"]),
                              field=name)
    else:
        if not isinstance(value, str):
            raise ConfigError("must be a string", field=name)
        if len(value) > decl.get("max", 64):
            raise ConfigError("is longer than %d characters" % decl.get("max", 64), field=name)
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError("must not contain control characters", field=name)
        if "enum" in decl and value not in decl["enum"]:
            raise ConfigError("must be one of %s" % ", ".join(decl["enum"]), field=name)
        if "pattern" in decl and not re.match(decl["pattern"], value):
            raise ConfigError("has an invalid format", field=name)
    return value


def _canonical(locked: dict[str, Any]) -> bytes:
    return json.dumps({"format": MANIFEST_FORMAT, "locked": locked}, sort_keys=True,
                      separators=(",", ":")).encode()


class LockManifest:
    """The MAC-protected record of installer-locked settings."""

    def __init__(self, state_dir: Path, board: Board | None = None) -> None:
        self.path = Path(state_dir) / MANIFEST
        self.keys = KeyStore(state_dir, board)

    def _key(self) -> bytes:
        if not self.keys.has(MAC_KEY):
            self.rotate_key()
        return self.keys.get(MAC_KEY)

    def rotate_key(self) -> None:
        """Replace the MAC key (ownership transfer rotates local secrets)."""
        self.keys.put(MAC_KEY, secrets.token_bytes(32), "MAC of installer-locked settings",
                      "HMAC-SHA256", 256, "generated on the gateway", 365, replace=True)

    def write(self, locked: dict[str, Any]) -> None:
        """Record the locked settings and their values."""
        mac = hmac.new(self._key(), _canonical(locked), hashlib.sha256).hexdigest()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name("." + self.path.name + ".tmp")
        tmp.write_text(json.dumps({"format": MANIFEST_FORMAT, "locked": locked, "mac": mac},
                                  indent=2, sort_keys=True))
        os.replace(tmp, self.path)

    def drift(self, current: dict[str, Any]) -> list[str]:
        """Differences between the recorded locked settings and the current ones."""
        try:
            doc = json.loads(self.path.read_text())
            recorded, mac = doc["locked"], str(doc["mac"])
        except FileNotFoundError:
            return ["no record of installer-locked settings (%s)" % MANIFEST] if current else []
        except (ValueError, KeyError, TypeError):
            return ["%s is unreadable" % MANIFEST]
        if not isinstance(recorded, dict):
            return ["%s is malformed" % MANIFEST]
        want = hmac.new(self._key(), _canonical(recorded), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, mac):
            return ["%s fails its MAC (edited outside the admin interface)" % MANIFEST]
        out = []
        for name in sorted(set(recorded) | set(current)):
            if name not in current:
                out.append("setting %s was unlocked outside the admin interface" % name)
            elif name not in recorded:
                out.append("setting %s was locked outside the admin interface" % name)
            elif recorded[name] != current[name]:
                out.append("installer-locked setting %s drifted from its recorded value" % name)
        return out
