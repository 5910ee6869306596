"""Zigbee install codes: CRC-16 check and the AES-MMO hash that turns one into a link key.

Per the Zigbee specification (Base Device Behavior 10.1, Zigbee Smart Energy 5.4.8.1): an install
code is 6, 8, 12 or 16 random bytes followed by their CRC-16/X-25 (little-endian); the link key is
the Matyas-Meyer-Oseas hash of the whole code (CRC included) with AES-128 as the block cipher.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from firmware.core.errors import IntegrityError

CODE_SIZES = (6, 8, 12, 16)
# The public default trust-centre link key every Zigbee 3.0 stack knows.
DEFAULT_TC_LINK_KEY = b"ZigBeeAlliance09"


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (reflected 0x1021, init 0xFFFF, final XOR 0xFFFF)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def new_install_code(size: int = 16) -> bytes:
    """A random install code of `size` bytes with its CRC appended."""
    if size not in CODE_SIZES:
        raise ValueError("install code size must be 6, 8, 12 or 16 bytes")
    code = secrets.token_bytes(size)
    return code + crc16_x25(code).to_bytes(2, "little")


def check_install_code(code: bytes) -> bytes:
    """Return the code if its length and CRC are right, else IntegrityError."""
    if len(code) - 2 not in CODE_SIZES:
        raise IntegrityError("install code has %d bytes; expected 8, 10, 14 or 18 with CRC"
                             % len(code))
    if crc16_x25(code[:-2]).to_bytes(2, "little") != code[-2:]:
        raise IntegrityError("install code CRC does not match", "re-read the code from the label")
    return code


def _aes_block(key: bytes, block: bytes) -> bytes:
    enc = Cipher(algorithms.AES128(key), modes.ECB()).encryptor()  # noqa: S305 - one block
    return enc.update(block) + enc.finalize()


def aes_mmo_hash(data: bytes) -> bytes:
    """Matyas-Meyer-Oseas hash with AES-128 (Zigbee spec B.6), for inputs under 8 KiB."""
    bits = len(data) * 8
    if bits >= 1 << 16:
        raise ValueError("input too long for the short AES-MMO padding")
    padded = data + b"\x80"
    while (len(padded) + 2) % 16:
        padded += b"\x00"
    padded += bits.to_bytes(2, "big")
    h = bytes(16)
    for i in range(0, len(padded), 16):
        m = padded[i:i + 16]
        e = _aes_block(h, m)
        h = bytes(x ^ y for x, y in zip(e, m, strict=True))
    return h


def link_key(code: bytes) -> bytes:
    """The 16-byte link key derived from a CRC-checked install code."""
    return aes_mmo_hash(check_install_code(code))
