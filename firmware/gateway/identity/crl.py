"""The installed site CRL: verified, reloaded on change, replaced only by a newer one (CPython).

``identity/crl.pem`` comes with the installation bundle and is replaced by :func:`install_crl`
(from the platform over the WAN, or from an operator's file through ``mamori-gateway crl
install``). A replacement must be signed by this gateway's site CA (a CRL of another site is
refused by name) and carry a higher CRL number than the installed one (an older or equal number
is a replay); the same CRL again is answered ``current``. The file is replaced atomically
(tmp + fsync + rename): a power cut leaves the old or the new list, never a mix.

Revocation is judged here, per certificate serial, not by OpenSSL's CRL check in the TLS server:
OpenSSL refuses *every* client once the CRL is past its next update ("CRL has expired"), which
would lock a house out of its own doors. A stale list keeps refusing what it lists; freshness is
watched and alerted on separately (``firmware.core.crlstate``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from firmware.common import crl as crlmod
from firmware.common.crl import CrlInfo
from firmware.core import refusals as rc
from firmware.core.errors import AuthError, IntegrityError
from firmware.gateway.identity.install import IDENTITY, write_file

CRL_FILE = "crl.pem"
INSTALLED = "installed"
CURRENT = "current"


def site_ca(state_dir: Path) -> x509.Certificate:
    """The installed site CA certificate."""
    return x509.load_pem_x509_certificate(
        (Path(state_dir) / IDENTITY / "site-ca.pem").read_bytes())


class Revocation:
    """The site CRL from identity/crl.pem, verified against the site CA, reloaded on change."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / IDENTITY / CRL_FILE
        self.ca = site_ca(state_dir)
        self._key: tuple[int, int, int] | None = None
        self._info: CrlInfo | None = None

    def info(self) -> CrlInfo:
        """The installed CRL (IntegrityError if it is not the site's)."""
        st = os.stat(self.path)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key or self._info is None:
            info = crlmod.verified(self.path.read_bytes(), self.ca)
            self._info, self._key = info, key
        return self._info

    def serials(self) -> frozenset[int]:
        """Revoked serial numbers (IntegrityError if the CRL is not the site's)."""
        return self.info().serials

    def check(self, serial: int) -> None:
        """AuthError when the serial is revoked (whatever the list's age)."""
        if serial in self.serials():
            raise rc.coded(AuthError("certificate serial %d is revoked" % serial),
                           rc.CREDENTIAL_REVOKED)


@dataclass(frozen=True)
class Installed:
    """The outcome of one install: the new list, the one it replaced, what it newly revokes."""

    status: str
    info: CrlInfo
    previous: CrlInfo | None

    @property
    def newly_revoked(self) -> frozenset[int]:
        """Serials on the new list that were not on the old one."""
        old = self.previous.serials if self.previous is not None else frozenset()
        return self.info.serials - old

    def answer(self) -> dict[str, object]:
        """What the installer is told (no secret: numbers, dates, counts)."""
        out: dict[str, object] = {"status": self.status, **self.info.summary(),
                                  "newly_revoked": len(self.newly_revoked)}
        if self.previous is not None:
            out["previous"] = self.previous.number
        return out


def check_new(state_dir: Path, pem: bytes) -> Installed:
    """Verify a candidate CRL against the installed one (IntegrityError with the reason)."""
    path = Path(state_dir) / IDENTITY / CRL_FILE
    ca = site_ca(state_dir)
    new = crlmod.verified(pem, ca)
    try:
        old: CrlInfo | None = crlmod.verified(path.read_bytes(), ca)
    except (OSError, IntegrityError):
        old = None  # missing or broken: any valid list of the site is better
    if old is not None:
        if new.number == old.number and new.der == old.der:
            return Installed(CURRENT, new, old)
        if new.number <= old.number:
            raise IntegrityError("CRL number %d is not newer than the installed CRL %d "
                                 "(replay or rollback refused)" % (new.number, old.number),
                                 "install the site's current CRL")
    return Installed(INSTALLED, new, old)


def install_crl(state_dir: Path, pem: bytes) -> Installed:
    """Replace the installed CRL atomically with a newer one of this site (see module doc)."""
    result = check_new(state_dir, pem)
    if result.status == INSTALLED:
        write_file(Path(state_dir) / IDENTITY / CRL_FILE, pem, secret=False)
    return result
