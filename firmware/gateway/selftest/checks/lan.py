"""LAN mutual authentication: the device-facing TLS server refuses unauthenticated peers.

Requirements: SR2-H-2 (mutual authentication with every device), SR3-H-5 (encrypted path to
devices), C5 (needed ports protected by per-device credentials), UK5.

The server under test is ``firmware.gateway.lan.tls.server_context`` built on a scratch copy of
the state directory:

1. with the installed trust material as is: a client without a certificate and a client with a
   certificate from another CA must both be refused;
2. with a probe site CA and its CRL put into the scratch copy (the gateway never holds its site
   CA's signing key, so the check cannot issue under it): a device certificate from that CA is
   accepted (control), the same CA's revoked certificate is refused at admission (revocation is
   judged per serial by the admission step, ``identity/crl.py``, not by OpenSSL, so that a
   stale list cannot lock every device out).

The installed CRL must also verify against the installed site CA.
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from firmware.common import certs
from firmware.common.boardprofile import Board
from firmware.core.errors import AuthError, MamoriError
from firmware.gateway.identity.admission import Revocation
from firmware.gateway.identity.install import IDENTITY
from firmware.gateway.lan import tls as lantls
from firmware.gateway.selftest.checks._common import verdict
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive
from firmware.gateway.selftest.tlsprobe import (
    Probe,
    ProbePKI,
    expect_refused,
    handshake,
    weak_context,
)

LAN_REQS = ["SR2-H-2", "SR3-H-5", "C5", "UK5"]
_KU_LEAF = x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=False, crl_sign=False, encipher_only=False,
                         decipher_only=False)
_KU_CA = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                       crl_sign=True, encipher_only=False, decipher_only=False)


def _pem(obj: Any) -> bytes:
    return bytes(obj.public_bytes(serialization.Encoding.PEM))


class ProbeSite:
    """A scratch site CA that issues Mamori-style device certificates and a CRL."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mamori selftest site CA")])
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(self.now - dt.timedelta(minutes=5))
                     .not_valid_after(self.now + dt.timedelta(hours=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(_KU_CA, critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))

    def device(self, dev_id: str) -> tuple[Path, Path, int]:
        """(certificate file, key file, serial) of a device certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dev_id)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(self.now - dt.timedelta(minutes=5))
                .not_valid_after(self.now + dt.timedelta(hours=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_KU_LEAF, critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .add_extension(x509.SubjectAlternativeName([
                    x509.UniformResourceIdentifier(certs.DEVICE_URI + dev_id),
                    x509.UniformResourceIdentifier(certs.MODEL_URI + "Mamori/SelftestProbe")]),
                    critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_file, key_file = self.dir / f"{dev_id}.crt", self.dir / f"{dev_id}.key"
        cert_file.write_bytes(_pem(cert))
        key_file.touch(mode=0o600)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_file, key_file, cert.serial_number

    def crl(self, revoked: list[int]) -> bytes:
        """A CRL revoking these serials."""
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(self.now - dt.timedelta(minutes=5))
             .next_update(self.now + dt.timedelta(hours=1)))
        for s in revoked:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(s)
                                          .revocation_date(self.now - dt.timedelta(minutes=1))
                                          .build())
        return _pem(b.sign(self.key, hashes.SHA256()))

    def install_trust(self, state_dir: Path, revoked: list[int]) -> None:
        """Replace the scratch copy's device trust (CA chain and CRL) with this probe site's."""
        ident = Path(state_dir) / IDENTITY
        (ident / "ca-chain.pem").write_bytes(_pem(self.cert))
        (ident / "site-ca.pem").write_bytes(_pem(self.cert))
        (ident / "crl.pem").write_bytes(self.crl(revoked))


def _device_client(cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A device-side client; it does not judge the gateway (the server is under test)."""
    c = weak_context("client")
    if cert is not None:
        c.load_cert_chain(cert[0], cert[1])
    return c


def _board(ctx: CheckContext) -> Board | None:
    try:
        return ctx.board()
    except MamoriError:
        return None


@check("lan.mutual-auth", "LAN TLS server refuses devices without a valid, unrevoked certificate",
       requirements=LAN_REQS,
       remediation="install the gateway's bundle (`mamori-gateway run --bundle FILE`) so the "
                   "LAN channel runs mutual TLS; build its context only with "
                   "firmware.gateway.lan.tls.server_context (CERT_REQUIRED + CRL check)")
def mutual_auth(ctx: CheckContext) -> Outcome:
    """Loopback sessions with no / foreign-CA / revoked client certificates: all refused."""
    if not (ctx.live_state_dir / IDENTITY / "gateway.json").is_file():
        return failed("no LAN identity installed (identity/gateway.json): the LAN channel "
                      "runs without mutual TLS, devices are not authenticated by certificate")
    board = _board(ctx)
    evidence, bad = [], []
    try:
        crl_serials = Revocation(ctx.live_state_dir).serials()
        evidence.append(f"installed CRL verifies against the site CA ({len(crl_serials)} "
                        "revoked serial(s))")
    except (MamoriError, OSError, ValueError) as exc:
        bad.append(f"installed CRL unusable: {exc}")
    scratch = ctx.scratch()
    tmp = ctx.tempdir()
    try:
        live_server = lantls.server_context(scratch, board)
        floor = lantls.allowlist_floor(scratch)  # before the probe trust replaces the site CA
    except (MamoriError, OSError, ssl.SSLError) as exc:
        return failed(f"the LAN server context cannot be built from the installed identity: "
                      f"{exc}", *bad)
    rogue = ProbePKI(tmp, "rogue-device")
    probes: list[Probe] = [
        ("a device without a client certificate", live_server, _device_client(), None),
        ("a device certificate from another CA", live_server,
         _device_client((rogue.cert_file, rogue.key_file)), None),
    ]
    site = ProbeSite(tmp)
    good = site.device("selftest-good")
    revoked = site.device("selftest-revoked")
    site.install_trust(scratch, [revoked[2]])
    probe_server = lantls.server_context(scratch, board, floor)
    ok, detail = handshake(probe_server, _device_client(good[:2]))
    if not ok:
        return inconclusive("control: a valid device certificate was refused: " + detail,
                            *evidence)
    evidence.append(f"control: valid device certificate accepted ({detail})")
    accepted, refused = expect_refused(probes, "accepted")
    return verdict(bad + accepted + _revoked_refused(scratch, probe_server, revoked, evidence),
                   evidence + refused)


def _revoked_refused(scratch: Path, server: ssl.SSLContext, revoked: tuple[Path, Path, int],
                     evidence: list[str]) -> list[str]:
    """The revoked certificate: through TLS, then refused by the admission step's CRL check."""
    ok, detail = handshake(server, _device_client(revoked[:2]))
    try:
        Revocation(scratch).check(revoked[2])
    except AuthError as exc:
        evidence.append("refused a revoked device certificate at admission (TLS %s): %s"
                        % ("accepted" if ok else "refused: " + detail[:60], exc.message))
        return []
    return [f"admitted a revoked device certificate (serial {revoked[2]} on the CRL)"]
