"""Field encryption at rest for personal data kept in databases (CPython).

A store that must look rows up by a personal value (an account name, a throttle key) keeps it
AES-SIV encrypted (RFC 5297, deterministic: equal values give equal ciphertexts, so equality
lookups still work); every other personal value is AES-256-GCM encrypted with a random nonce.
Both keys come from one secret in the key store, wrapped by the device KEK: SQLite's journal
and WAL, and the blocks a rewrite frees on flash, only ever hold ciphertext, which the KEK's
destruction (resale reset) or this key's rotation (ownership transfer) makes unreadable.
"""

from __future__ import annotations

import base64
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware.common.boardprofile import Board
from firmware.core.errors import IntegrityError
from firmware.gateway.identity.keystore import KeyStore

_MAGIC = b"\x01"
_NONCE = 12


def _derive(secret: bytes, label: bytes, size: int) -> bytes:
    return HKDF(hashes.SHA256(), size, None, b"mamori-atrest/1 " + label).derive(secret)


class FieldCipher:
    """Seal and open personal values (bytes or text) bound to their field (associated data)."""

    def __init__(self, secret: bytes) -> None:
        self._gcm = AESGCM(_derive(secret, b"gcm", 32))
        self._siv = AESSIV(_derive(secret, b"siv", 64))

    def seal(self, plain: bytes, field: str) -> bytes:
        """Randomised encryption (AES-256-GCM)."""
        nonce = secrets.token_bytes(_NONCE)
        return _MAGIC + nonce + self._gcm.encrypt(nonce, plain, field.encode())

    def open(self, blob: bytes, field: str) -> bytes:
        """Decrypt what seal() made; IntegrityError if altered, moved to another field or
        sealed under another key."""
        if blob[:1] != _MAGIC or len(blob) < 1 + _NONCE + 16:
            raise IntegrityError("stored %s is not sealed in Mamori's format" % field)
        try:
            return self._gcm.decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], field.encode())
        except Exception:
            raise IntegrityError("stored %s failed authentication (altered or wrong key)"
                                 % field)

    def seal_text(self, text: str, field: str) -> str:
        """seal() for text columns (base64)."""
        return base64.b64encode(self.seal(text.encode(), field)).decode()

    def open_text(self, token: str, field: str) -> str:
        """open() for text columns."""
        try:
            raw = base64.b64decode(token, validate=True)
        except ValueError:
            raise IntegrityError("stored %s is not sealed in Mamori's format" % field)
        return self.open(raw, field).decode()

    def index(self, text: str, field: str) -> str:
        """Deterministic encryption (AES-SIV) of a lookup value: usable in WHERE clauses."""
        return base64.b64encode(self._siv.encrypt(text.encode(), [field.encode()])).decode()

    def unindex(self, token: str, field: str) -> str:
        """The value behind index()."""
        try:
            return self._siv.decrypt(base64.b64decode(token, validate=True),
                                     [field.encode()]).decode()
        except Exception:
            raise IntegrityError("stored %s failed authentication (altered or wrong key)"
                                 % field)


class StoreKey:
    """One store's field secret in the key store, rotated crash-safely.

    The store records the id of the key its rows are sealed under (``kid``). A rotation puts
    the new secret beside the current one (``NAME.next``), re-seals the rows and records the
    new id in one transaction, then promotes it; opening finishes a rotation a crash
    interrupted, whichever side of the store's commit it fell on.
    """

    def __init__(self, state_dir: Path, board: Board | None, name: str, purpose: str) -> None:
        self.keys = KeyStore(state_dir, board)
        self.name = name
        self.purpose = purpose

    @staticmethod
    def kid(secret: bytes) -> str:
        """Public id of a secret (never the secret)."""
        return _derive(secret, b"kid", 8).hex()

    def _put(self, name: str, secret: bytes) -> None:
        self.keys.put(name, secret, self.purpose, "AES-256-GCM + AES-SIV (HKDF-SHA256)", 256,
                      "generated on the gateway", 365, replace=True)

    def open(self, stored_kid: str | None) -> tuple[FieldCipher, str]:
        """The cipher the store's rows are sealed under (a new secret for a new store)."""
        nxt = self.name + ".next"
        if not self.keys.has(self.name):
            self._put(self.name, secrets.token_bytes(32))
        secret = self.keys.get(self.name)
        if stored_kid is not None and self.kid(secret) != stored_kid and self.keys.has(nxt):
            cand = self.keys.get(nxt)
            if self.kid(cand) == stored_kid:  # the rows were re-sealed: promote the new key
                self._put(self.name, cand)
                secret = cand
        if self.keys.has(nxt):
            self.keys.delete(nxt)  # a rotation that never committed
        if stored_kid is not None and self.kid(secret) != stored_kid:
            raise IntegrityError("the %s key does not match its store (id %s, store %s)"
                                 % (self.name, self.kid(secret), stored_kid),
                                 "the store was restored from another gateway or its key lost")
        return FieldCipher(secret), self.kid(secret)

    def begin_rotation(self) -> tuple[FieldCipher, str]:
        """A new secret beside the current one; re-seal under it, record its id, then
        finish_rotation()."""
        secret = secrets.token_bytes(32)
        self._put(self.name + ".next", secret)
        return FieldCipher(secret), self.kid(secret)

    def finish_rotation(self) -> None:
        """Promote the new secret; the old one is overwritten."""
        nxt = self.name + ".next"
        self._put(self.name, self.keys.get(nxt))
        self.keys.delete(nxt)
