"""Signing keys of a release repository: Ed25519, one PEM file per key, mode 0600.

These files sit in REPO/keys for a self-contained tool. A real deployment keeps the root keys
offline (air-gapped machine or hardware tokens) and only brings them out to sign a new root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey

from firmware.core.errors import ConfigError


class KeyStore:
    """Private keys in REPO/keys, indexed by role in keys/index.json."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.index_path = directory / "index.json"

    def _index(self) -> dict[str, list[str]]:
        try:
            data: dict[str, list[str]] = json.loads(self.index_path.read_text())
            return data
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError("key index is unreadable: %s" % exc, str(self.index_path))

    def _save_index(self, index: dict[str, list[str]]) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True))
        os.replace(tmp, self.index_path)

    def generate(self, role: str) -> CryptoSigner:
        """Create a new key for `role`, store it with mode 0600 and return its signer."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        signer = CryptoSigner.generate_ed25519()
        keyid = signer.public_key.keyid
        path = self.dir / ("%s.%s.pem" % (role, keyid[:16]))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(signer.private_bytes)
        index = self._index()
        index.setdefault(role, []).append(keyid)
        self._save_index(index)
        return signer

    def keyids(self, role: str) -> list[str]:
        """Key ids held for `role`."""
        return list(self._index().get(role, []))

    def signer(self, role: str, keyid: str) -> CryptoSigner:
        """Load one private key as a signer."""
        path = self.dir / ("%s.%s.pem" % (role, keyid[:16]))
        try:
            priv = load_pem_private_key(path.read_bytes(), None)
        except FileNotFoundError:
            raise ConfigError("private key for role %s is missing" % role, str(path),
                              hint="restore it from the offline backup")
        public = SSlibKey.from_crypto(priv.public_key(), keyid)
        return CryptoSigner(priv, public)

    def signers(self, role: str) -> list[CryptoSigner]:
        """Every signer held for `role`."""
        return [self.signer(role, k) for k in self.keyids(role)]

    def retire(self, role: str, keyid: str) -> None:
        """Delete a rotated-out key so it can never sign again."""
        index = self._index()
        if keyid in index.get(role, []):
            index[role].remove(keyid)
            self._save_index(index)
        path = self.dir / ("%s.%s.pem" % (role, keyid[:16]))
        if path.exists():
            path.unlink()
