"""Key material of the access log, every secret wrapped by the device KEK (CPython).

- data key (AES-256-GCM for records): ``keys/data.key``; destroying it (or the KEK) makes the
  records unreadable (crypto-erase on resale reset);
- Ed25519 log-signing key: ``keys/sign.key``; its public key is in ``log.json`` and genesis;
- forward-evolving seal key and its epoch: ``keys/seal.key``, rewritten at every checkpoint,
  the previous file overwritten before it is dropped;
- the platform bundle (log id, public key, seal key_0, data key): ``outbox/keys.bin`` until the
  uploader has delivered it, then erased, so key_0 does not stay on the gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from firmware.common.accesslog.files import (
    BUNDLE_LABEL,
    DATA_LABEL,
    SEAL_LABEL,
    SIGN_LABEL,
    load_seal,
)
from firmware.common.fsutil import write_all
from firmware.common.kek import device_kek, unwrap, wrap
from firmware.core.accesslog.chain import SealKey
from firmware.core.errors import IntegrityError, StateError


def atomic_write(path: Path, data: bytes, wipe_old: bool = False) -> None:
    """Replace a file durably (write, fsync, rename, fsync dir); optionally overwrite the old."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        write_all(fd, data)
        os.fsync(fd)
    except OSError:
        # A full disk or an I/O error: the old file stays as it was, no half-written temp file.
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    old = None
    if wipe_old:
        with contextlib.suppress(FileNotFoundError):
            old = os.open(path, os.O_WRONLY)
    try:
        os.replace(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            # Best effort on flash: the old inode's bytes are overwritten before it is freed.
            size = os.fstat(old).st_size
            os.pwrite(old, b"\0" * size, 0)
            os.fsync(old)
    finally:
        if old is not None:
            os.close(old)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink in a directory durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def shred(path: Path) -> None:
    """Overwrite a file with zeros, then delete it (best effort on flash)."""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.pwrite(fd, b"\0" * os.fstat(fd).st_size, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()


def public_bytes(key: Ed25519PrivateKey) -> bytes:
    """Raw 32-byte Ed25519 public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


class LogKeys:
    """Loads, creates and erases the access log's keys in ``STATE_DIR/accesslog``."""

    def __init__(self, state_dir: Path, log_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.dir = Path(log_dir)
        self.keys = self.dir / "keys"
        self.data_key = b""
        self.sign_key: Ed25519PrivateKey | None = None
        self.seal: SealKey | None = None
        self.info: dict[str, Any] = {}

    @property
    def bundle_path(self) -> Path:
        """Where the platform bundle waits for upload."""
        return self.dir / "outbox" / "keys.bin"

    def exists(self) -> bool:
        """True when the key files of a log are present."""
        return all((self.keys / n).exists() for n in ("data.key", "sign.key", "seal.key"))

    def create(self, log_id: str, created: float) -> None:
        """Generate fresh keys for a new log and queue the platform bundle."""
        kek = device_kek(self.state_dir)
        self.data_key = secrets.token_bytes(32)
        self.sign_key = Ed25519PrivateKey.generate()
        key0 = secrets.token_bytes(32)
        pub = public_bytes(self.sign_key)
        self.info = {"log_id": log_id, "pub": pub.hex(), "created": created,
                     "format": "mamori-accesslog", "v": 1}
        bundle = dict(self.info, key0=key0.hex(), data_key=self.data_key.hex())
        atomic_write(self.bundle_path, wrap(kek, json.dumps(bundle).encode(), BUNDLE_LABEL))
        atomic_write(self.keys / "data.key", wrap(kek, self.data_key, DATA_LABEL))
        raw = self.sign_key.private_bytes_raw()
        atomic_write(self.keys / "sign.key", wrap(kek, raw, SIGN_LABEL))
        self.seal = SealKey(0, key0)
        self.save_seal()
        atomic_write(self.dir / "log.json", json.dumps(self.info, indent=1).encode())

    def load(self) -> None:
        """Unwrap the keys of an existing log."""
        if not self.exists():
            raise StateError("access-log keys are missing in %s" % self.keys,
                             "they were crypto-erased; remove the old segments to start anew")
        kek = device_kek(self.state_dir, create=False)
        self.data_key = unwrap(kek, (self.keys / "data.key").read_bytes(), DATA_LABEL)
        self.sign_key = Ed25519PrivateKey.from_private_bytes(
            unwrap(kek, (self.keys / "sign.key").read_bytes(), SIGN_LABEL))
        self.seal = load_seal(self.state_dir, self.dir)
        try:
            self.info = json.loads((self.dir / "log.json").read_text())
        except (OSError, ValueError):
            raise IntegrityError("access-log identity file %s is missing or damaged"
                                 % (self.dir / "log.json"))

    def save_seal(self) -> None:
        """Persist the current seal key and epoch, erasing the previous one."""
        assert self.seal is not None
        kek = device_kek(self.state_dir)
        blob = struct.pack(">Q", self.seal.epoch) + self.seal.key
        atomic_write(self.keys / "seal.key", wrap(kek, blob, SEAL_LABEL), wipe_old=True)

    def sign(self, msg: bytes) -> bytes:
        """Ed25519 signature with the log-signing key."""
        assert self.sign_key is not None
        return self.sign_key.sign(msg)

    def erase(self) -> None:
        """Crypto-erase: destroy every key file and forget the keys in memory."""
        for n in ("data.key", "sign.key", "seal.key", "seal.key.tmp"):
            shred(self.keys / n)
        shred(self.bundle_path)
        if self.seal is not None:
            self.seal.wipe()
        self.data_key = b""
        self.sign_key = None
