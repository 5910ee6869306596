"""The owner's personal data, encrypted under its own data key wrapped by the KEK (UK8, R2-5).

"Delete my data" is a crypto-erase: the data key is destroyed first (key store zeroise), then
the ciphertext is overwritten and removed.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from firmware.common.boardprofile import Board
from firmware.common.shred import shred
from firmware.core.errors import ConfigError, IntegrityError
from firmware.gateway.identity.keystore import KeyStore

DATA_FILE = "personal/data.bin"
DATA_KEY = "personal-data"
MAX_DATA = 64 * 1024
_AAD = b"mamori-personal-data/1"


class PersonalStore:
    """Read, write and crypto-erase the owner's personal data."""

    def __init__(self, state_dir: Path, board: Board | None = None) -> None:
        self.path = Path(state_dir) / DATA_FILE
        self.keys = KeyStore(state_dir, board)

    def read(self) -> dict[str, Any]:
        """The stored personal data ({} when none)."""
        if not self.path.is_file() or not self.keys.has(DATA_KEY):
            return {}
        blob = self.path.read_bytes()
        try:
            plain = AESGCM(self.keys.get(DATA_KEY)).decrypt(blob[:12], blob[12:], _AAD)
        except Exception:
            raise IntegrityError("personal data failed authentication (tampered or wrong key)")
        data: dict[str, Any] = json.loads(plain)
        return data

    def write(self, data: dict[str, Any]) -> None:
        """Replace the personal data (a data key is made on first use)."""
        plain = json.dumps(data, sort_keys=True).encode()
        if len(plain) > MAX_DATA:
            raise ConfigError("personal data is larger than %d bytes" % MAX_DATA)
        if not self.keys.has(DATA_KEY):
            self.keys.put(DATA_KEY, AESGCM.generate_key(256), "owner personal data key",
                          "AES-256-GCM", 256, "generated on the gateway", 365)
        nonce = secrets.token_bytes(12)
        blob = nonce + AESGCM(self.keys.get(DATA_KEY)).encrypt(nonce, plain, _AAD)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name("." + self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, blob)
            os.fsync(fd)
        finally:
            os.close(fd)
        old = self.path.exists()
        if old:
            shred(self.path)
        os.replace(tmp, self.path)

    def erase(self) -> dict[str, bool]:
        """Crypto-erase: destroy the data key, then the ciphertext."""
        had_key = self.keys.has(DATA_KEY)
        if had_key:
            self.keys.delete(DATA_KEY)
        removed = shred(self.path)
        return {"key_destroyed": had_key, "data_removed": removed}
