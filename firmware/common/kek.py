"""The device-unique key-encryption key (KEK) seam (CPython).

Boards with a TPM or secure element keep the KEK in hardware (a backend behind this seam); the
fallback is a random 256-bit key in ``STATE_DIR/keys/device.kek`` with 0600 permissions. Every
other secret at rest is wrapped (AES-GCM) under this key; destroying it crypto-erases them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from firmware.core.errors import IntegrityError, StateError

KEK_FILE = "keys/device.kek"
_WRAP_MAGIC = b"MKW1"


def kek_path(state_dir: Path) -> Path:
    """Where the fallback KEK file lives."""
    return Path(state_dir) / KEK_FILE


def device_kek(state_dir: Path, create: bool = True) -> bytes:
    """Return the device KEK, creating it (0600, atomically) on first use."""
    path = kek_path(state_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise StateError("no device key at %s" % path, "the gateway is not initialised")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        data = path.read_bytes()
    if len(data) != 32:
        raise IntegrityError("device key at %s is damaged (%d bytes)" % (path, len(data)))
    return data


def destroy_kek(state_dir: Path) -> bool:
    """Overwrite the fallback KEK file with zeros, fsync, unlink, fsync the folder."""
    path = kek_path(state_dir)
    for p in (path.with_suffix(".tmp"), path):
        try:
            fd = os.open(p, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            continue
        try:
            os.pwrite(fd, b"\0" * max(os.fstat(fd).st_size, 32), 0)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(p)
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        if p == path:
            return True
    return False


def wrap(kek: bytes, plaintext: bytes, label: bytes) -> bytes:
    """Encrypt a secret under the KEK; label binds it to its purpose (AAD)."""
    nonce = secrets.token_bytes(12)
    return _WRAP_MAGIC + nonce + AESGCM(kek).encrypt(nonce, plaintext, label)


def unwrap(kek: bytes, blob: bytes, label: bytes) -> bytes:
    """Decrypt a wrapped secret; IntegrityError if it was tampered with or mislabelled."""
    if not blob.startswith(_WRAP_MAGIC) or len(blob) < 4 + 12 + 16:
        raise IntegrityError("wrapped secret is not in Mamori's format")
    try:
        return AESGCM(kek).decrypt(blob[4:16], blob[16:], label)
    except Exception:
        raise IntegrityError("wrapped secret failed authentication (tampered or wrong key)")
