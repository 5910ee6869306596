"""The gateway key store: secrets wrapped (AES-256-GCM) under the device KEK, with an inventory.

Every entry is one file ``keys/store/<name>.key`` (0600) holding the secret wrapped under the
device-unique KEK (``devicekey``; a TPM/secure-element backend plugs in through ``KEK_BACKENDS``
when the board profile names one). ``keys/inventory.json`` records, per key, what SP 800-57 asks
(SR3-H-7): purpose, algorithm, size, origin, creation date, cryptoperiod and storage. It never
holds key material.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from firmware.common import kek as devicekey
from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.core.errors import ConfigError, StateError

STORE_DIR = "keys/store"
INVENTORY = "keys/inventory.json"
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class KekBackend(Protocol):
    """Where the device-unique key-encryption key comes from."""

    storage: str

    def kek(self) -> bytes:
        """The 32-byte KEK."""
        ...

    def destroy(self) -> bool:
        """Destroy the KEK for good (crypto-erase of everything wrapped by it); True if one
        existed."""
        ...


class FileKek:
    """Fallback: a random KEK in a 0600 file in the state directory."""

    def __init__(self, state_dir: Path, note: str = "") -> None:
        self.state_dir = Path(state_dir)
        self.storage = "AES-256-GCM under file KEK %s (0600)%s" % (devicekey.KEK_FILE, note)

    def kek(self) -> bytes:
        """Read (or create) the KEK file."""
        return devicekey.device_kek(self.state_dir)

    def destroy(self) -> bool:
        """Overwrite the KEK file, unlink it and make the unlink durable."""
        return devicekey.destroy_kek(self.state_dir)


# Secure-element drivers register here: name in the board profile -> factory(state_dir).
KEK_BACKENDS: dict[str, Callable[[Path], KekBackend]] = {}


def kek_backend(state_dir: Path, board: Board | None) -> KekBackend:
    """The KEK backend the board profile asks for (file KEK when it has no secure element)."""
    se = "none"
    if board is not None:
        se = board.security.secure_element
    if se == "none":
        return FileKek(state_dir)
    factory = KEK_BACKENDS.get(se)
    if factory is None:
        # No driver for this secure element in this build: keep working, say so in the inventory.
        return FileKek(state_dir, "; board has %s but no driver is installed" % se)
    return factory(Path(state_dir))


class KeyStore:
    """Named secrets at rest, wrapped under the KEK, plus their inventory."""

    def __init__(self, state_dir: Path, board: Board | None = None,
                 backend: KekBackend | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.backend = backend or kek_backend(self.state_dir, board)
        self.dir = self.state_dir / STORE_DIR

    def _path(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError("invalid key name %r" % name)
        return self.dir / (name + ".key")

    @staticmethod
    def _label(name: str) -> bytes:
        return b"mamori-keystore:" + name.encode()

    def _write(self, path: Path, data: bytes) -> None:
        # A replaced secret must not survive in the blocks the rename frees: overwrite it.
        try:
            old: int | None = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            old = None
        try:
            atomic_write(path, data)
            if old is not None:
                os.pwrite(old, b"\0" * os.fstat(old).st_size, 0)
                os.fsync(old)
        finally:
            if old is not None:
                os.close(old)

    def put(self, name: str, secret: bytes, purpose: str, algorithm: str, size_bits: int,
            origin: str, cryptoperiod_days: int, replace: bool = False) -> dict:
        """Store a secret wrapped under the KEK and record it in the inventory."""
        path = self._path(name)
        if path.exists() and not replace:
            raise StateError("key %r already exists in the key store" % name,
                             "rotate it explicitly (replace=True) or zeroise first")
        self._write(path, devicekey.wrap(self.backend.kek(), secret, self._label(name)))
        entry = {"name": name, "purpose": purpose, "algorithm": algorithm,
                 "size_bits": size_bits, "origin": origin,
                 "created": datetime.datetime.now(datetime.UTC).replace(microsecond=0)
                 .isoformat(),
                 "cryptoperiod_days": cryptoperiod_days, "storage": self.backend.storage}
        inv = {e["name"]: e for e in self.inventory()}
        inv[name] = entry
        self._save_inventory(list(inv.values()))
        return entry

    def get(self, name: str) -> bytes:
        """Unwrap a secret (IntegrityError if tampered with, StateError if absent)."""
        path = self._path(name)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise StateError("key %r is not in the key store" % name,
                             "install the gateway's bundle first")
        return devicekey.unwrap(self.backend.kek(), blob, self._label(name))

    def has(self, name: str) -> bool:
        """True when the key exists."""
        return self._path(name).exists()

    def delete(self, name: str) -> None:
        """Zeroise one key: overwrite its file, remove it, drop it from the inventory."""
        path = self._path(name)
        if path.exists():
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                fh.write(b"\0" * size)
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()
        self._save_inventory([e for e in self.inventory() if e["name"] != name])

    def inventory(self) -> list[dict]:
        """Inventory entries (no key material)."""
        path = self.state_dir / INVENTORY
        if not path.is_file():
            return []
        data: Any = json.loads(path.read_text())
        return list(data.get("keys", []))

    def _save_inventory(self, entries: list[dict]) -> None:
        body = {"format": "mamori-key-inventory/1",
                "keys": sorted(entries, key=lambda e: e["name"])}
        self._write(self.state_dir / INVENTORY, (json.dumps(body, indent=2) + "\n").encode())

    def check(self) -> list[str]:
        """Problems found: inventory vs files, cryptoperiods exceeded, weak sizes."""
        problems = []
        names = {p.stem for p in self.dir.glob("*.key")} if self.dir.is_dir() else set()
        inv = {e["name"]: e for e in self.inventory()}
        for n in sorted(names - set(inv)):
            problems.append("key %s is not in the inventory" % n)
        for n in sorted(set(inv) - names):
            problems.append("inventory lists %s but the key is missing" % n)
        now = datetime.datetime.now(datetime.UTC)
        for e in inv.values():
            age = now - datetime.datetime.fromisoformat(e["created"])
            if age.days > e["cryptoperiod_days"]:
                problems.append("key %s is past its %d-day cryptoperiod"
                                % (e["name"], e["cryptoperiod_days"]))
        return problems

    def zeroise(self) -> None:
        """Destroy every key (factory reset)."""
        for e in self.inventory():
            self.delete(e["name"])
