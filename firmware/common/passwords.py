"""Password hashing for the local admin credential (scrypt, per RFC 7914) and its first-use rule.

The installation bundle carries only the hash of a unique initial credential with
``must_change: true``; that credential unlocks nothing but the change itself (C6, SB327-2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from firmware.core.errors import AuthError, ConfigError, PolicyError

_N, _R, _P = 1 << 14, 8, 1
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L
MIN_NEW_LENGTH = 12


class MustChangeCredential(AuthError):
    """The credential is right but still the initial one: it must be changed before use."""

    code = "must-change"


def new_credential(groups: int = 5, size: int = 4) -> str:
    """A random, printable initial credential (about 99 bits), e.g. ``K7QM-3XPA-...``."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(groups * size))
    return "-".join(chars[i:i + size] for i in range(0, len(chars), size))


def hash_credential(secret: str, salt: bytes | None = None) -> str:
    """scrypt hash string ``scrypt$N$r$p$salt$hash`` (never the secret itself)."""
    salt = salt or secrets.token_bytes(16)
    h = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "scrypt$%d$%d$%d$%s$%s" % (_N, _R, _P, base64.b64encode(salt).decode(),
                                      base64.b64encode(h).decode())


def verify_hash(secret: str, stored: str) -> bool:
    """Constant-time check of a secret against a hash string."""
    try:
        alg, n, r, p, salt_b64, h_b64 = stored.split("$")
        if alg != "scrypt":
            raise ValueError(alg)
        salt = base64.b64decode(salt_b64)
        want = base64.b64decode(h_b64)
        got = hashlib.scrypt(secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except ValueError:
        raise ConfigError("stored credential hash is malformed")
    return hmac.compare_digest(got, want)


class AdminCredential:
    """The local admin credential record: {hash, must_change}. Persistence is the caller's."""

    def __init__(self, record: dict) -> None:
        if not isinstance(record.get("hash"), str):
            raise ConfigError("admin credential record has no hash")
        self.record = {"hash": record["hash"], "must_change": bool(record.get("must_change"))}

    def authenticate(self, secret: str) -> None:
        """Accept the current credential; refuse a wrong one and the unchanged initial one."""
        if not verify_hash(secret, self.record["hash"]):
            raise AuthError("wrong admin credential")
        if self.record["must_change"]:
            raise MustChangeCredential("the initial admin credential must be changed first",
                                       "change it with the initial credential, then log in")

    def change(self, old: str, new: str) -> dict:
        """Replace the credential (old one required); returns the new record to persist."""
        if not verify_hash(old, self.record["hash"]):
            raise AuthError("wrong admin credential")
        if len(new) < MIN_NEW_LENGTH:
            raise PolicyError("the new credential must have at least %d characters"
                              % MIN_NEW_LENGTH)
        if hmac.compare_digest(old.encode(), new.encode()):
            raise PolicyError("the new credential must differ from the current one")
        self.record = {"hash": hash_credential(new), "must_change": False}
        return dict(self.record)
