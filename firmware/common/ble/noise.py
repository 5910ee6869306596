"""Noise_IK_25519_ChaChaPoly_SHA256 per the Noise Protocol Framework spec (rev. 34), CPython.

Only the pieces IK needs: CipherState, SymmetricState and the two IK messages
(``-> e, es, s, ss`` and ``<- e, ee, se``) with the responder's static key known in advance.
Primitives come from ``cryptography``; nothing here is new crypto, and the tests check
interoperability with the independent ``noiseprotocol`` implementation.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from firmware.core.errors import AuthError, ProtocolError

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_SHA256"
DHLEN = 32
HASHLEN = 32
MAX_NONCE = (1 << 64) - 1


def public_bytes(key: x25519.X25519PrivateKey) -> bytes:
    """Raw 32-byte public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def _dh(priv: x25519.X25519PrivateKey, pub: bytes) -> bytes:
    try:
        return priv.exchange(x25519.X25519PublicKey.from_public_bytes(bytes(pub)))
    except ValueError:
        raise ProtocolError("invalid X25519 public key in the handshake")


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def hkdf2(ck: bytes, ikm: bytes) -> tuple[bytes, bytes]:
    """The Noise HKDF with two outputs."""
    temp = _hmac(ck, ikm)
    out1 = _hmac(temp, b"\x01")
    return out1, _hmac(temp, out1 + b"\x02")


class CipherState:
    """k and n; nonce is 32 zero bits followed by n little-endian (ChaChaPoly)."""

    def __init__(self, key: bytes | None = None) -> None:
        self.k = key
        self.n = 0

    def _nonce(self) -> bytes:
        if self.n >= MAX_NONCE:
            raise ProtocolError("nonce exhausted: rekey the channel")
        return b"\x00" * 4 + self.n.to_bytes(8, "little")

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt and advance the nonce (identity when no key yet)."""
        if self.k is None:
            return plaintext
        ct = ChaCha20Poly1305(self.k).encrypt(self._nonce(), plaintext, ad)
        self.n += 1
        return ct

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt and advance the nonce; AuthError when authentication fails."""
        if self.k is None:
            return ciphertext
        try:
            pt = ChaCha20Poly1305(self.k).decrypt(self._nonce(), ciphertext, ad)
        except InvalidTag:
            raise AuthError("BLE message failed authentication")
        self.n += 1
        return pt


class SymmetricState:
    """ck, h and the handshake CipherState."""

    def __init__(self, prologue: bytes) -> None:
        self.h = PROTOCOL_NAME.ljust(HASHLEN, b"\x00")
        self.ck = self.h
        self.cs = CipherState()
        self.mix_hash(prologue)

    def mix_hash(self, data: bytes) -> None:
        """h = HASH(h || data)."""
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes) -> None:
        """ck, k = HKDF(ck, ikm)."""
        self.ck, k = hkdf2(self.ck, ikm)
        self.cs = CipherState(k)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """Encrypt with h as associated data, then hash the ciphertext."""
        ct = self.cs.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ct)
        return ct

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Decrypt with h as associated data, then hash the ciphertext."""
        pt = self.cs.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return pt

    def split(self) -> tuple[CipherState, CipherState]:
        """The two transport CipherStates (initiator->responder, responder->initiator)."""
        k1, k2 = hkdf2(self.ck, b"")
        return CipherState(k1), CipherState(k2)


class NoiseIK:
    """One side of a Noise IK handshake; after it, ``send`` / ``recv`` CipherStates."""

    def __init__(self, initiator: bool, static: x25519.X25519PrivateKey, prologue: bytes,
                 remote_static: bytes | None = None,
                 ephemeral: x25519.X25519PrivateKey | None = None) -> None:
        if initiator and remote_static is None:
            raise ValueError("the IK initiator must know the responder's static key")
        self.initiator = initiator
        self.s = static
        self.e = ephemeral
        self.rs = remote_static
        self.re: bytes | None = None
        self.ss = SymmetricState(prologue)
        self.ss.mix_hash(remote_static if initiator else public_bytes(static))  # type: ignore
        self.send: CipherState | None = None
        self.recv: CipherState | None = None
        self.handshake_hash = b""

    def write_message_1(self, payload: bytes) -> bytes:
        """Initiator: -> e, es, s, ss + payload."""
        assert self.initiator and self.rs is not None
        self.e = self.e or x25519.X25519PrivateKey.generate()
        e_pub = public_bytes(self.e)
        self.ss.mix_hash(e_pub)
        self.ss.mix_key(_dh(self.e, self.rs))
        enc_s = self.ss.encrypt_and_hash(public_bytes(self.s))
        self.ss.mix_key(_dh(self.s, self.rs))
        return e_pub + enc_s + self.ss.encrypt_and_hash(payload)

    def read_message_1(self, msg: bytes) -> bytes:
        """Responder: read e, es, s, ss; return the payload (remote static in ``rs``)."""
        assert not self.initiator
        if len(msg) < DHLEN + DHLEN + 16 + 16:
            raise ProtocolError("Noise message 1 is too short")
        self.re = msg[:DHLEN]
        self.ss.mix_hash(self.re)
        self.ss.mix_key(_dh(self.s, self.re))
        self.rs = self.ss.decrypt_and_hash(msg[DHLEN:DHLEN + DHLEN + 16])
        self.ss.mix_key(_dh(self.s, self.rs))
        return self.ss.decrypt_and_hash(msg[DHLEN + DHLEN + 16:])

    def write_message_2(self, payload: bytes) -> bytes:
        """Responder: <- e, ee, se + payload; then split."""
        assert not self.initiator and self.re is not None and self.rs is not None
        self.e = self.e or x25519.X25519PrivateKey.generate()
        e_pub = public_bytes(self.e)
        self.ss.mix_hash(e_pub)
        self.ss.mix_key(_dh(self.e, self.re))
        self.ss.mix_key(_dh(self.e, self.rs))
        out = e_pub + self.ss.encrypt_and_hash(payload)
        c1, c2 = self.ss.split()
        self.recv, self.send, self.handshake_hash = c1, c2, self.ss.h
        return out

    def read_message_2(self, msg: bytes) -> bytes:
        """Initiator: read e, ee, se; return the payload; then split."""
        assert self.initiator and self.e is not None
        if len(msg) < DHLEN + 16:
            raise ProtocolError("Noise message 2 is too short")
        self.re = msg[:DHLEN]
        self.ss.mix_hash(self.re)
        self.ss.mix_key(_dh(self.e, self.re))
        self.ss.mix_key(_dh(self.s, self.re))
        payload = self.ss.decrypt_and_hash(msg[DHLEN:])
        c1, c2 = self.ss.split()
        self.send, self.recv, self.handshake_hash = c1, c2, self.ss.h
        return payload
