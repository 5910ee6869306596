"""Mutual TLS for LAN devices: SSLContext builders, peer certificate -> device identity (CPython).

Server side (the gateway): TLS 1.3; TLS 1.2 (ECDHE + AEAD suites only) as well only while an IP
model of the installed allowlist declares a constrained stack (``firmware.core.lanpolicy``: the
LAN service then refuses, after the handshake, every device below its own model's floor),
client certificate required and verified against the site CA chain, no
session tickets (every connection authenticates afresh). Build the context once and reuse it
for every connection. After the handshake ``DeviceAuthorizer`` maps the certificate to a device
identity, checks its serial against the current CRL file (which the platform may have refreshed
a second ago), and checks the model against the signed allowlist. The CRL is deliberately not
loaded into OpenSSL: its leaf check refuses *every* client once the list is past its next update,
and a stale list must not lock a house out of its doors (see ``identity/crl.py``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.common.certs import lan_floor
from firmware.core import lanpolicy
from firmware.gateway.identity.admission import DeviceAuthorizer
from firmware.gateway.identity.install import IDENTITY, installed_identity, tls_key_passphrase


def server_context(state_dir: Path, board: Board | None = None,
                   tls_floor: str | None = None) -> ssl.SSLContext:
    """The gateway's LAN server context: mutual TLS against the installed site CA and CRL.

    Its lowest version is `tls_floor`, by default the installed allowlist's
    (``lanpolicy.server_floor``).
    """
    ident = Path(state_dir) / IDENTITY
    installed_identity(state_dir)
    if tls_floor is None:
        tls_floor = allowlist_floor(state_dir)
    ctx = lan_floor(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    if tls_floor == lanpolicy.TLS12:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2  # suites: lan_floor's ECDHE + AEAD only
    ctx.load_verify_locations(cafile=str(ident / "ca-chain.pem"))
    # Revocation per serial in DeviceAuthorizer, not VERIFY_CRL_CHECK_LEAF (module docstring).
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    passphrase = tls_key_passphrase(state_dir, board)
    ctx.load_cert_chain(str(ident / "gateway.pem"), str(ident / "gateway-key.pem"),
                        password=lambda: passphrase)
    ctx.num_tickets = 0
    return ctx


def allowlist_floor(state_dir: Path) -> str:
    """The LAN server's TLS floor the installed (verified) allowlist calls for."""
    return lanpolicy.server_floor(DeviceAuthorizer(state_dir).allowlist)


def secure_lan(state_dir: Path, board: Board | None,
               bundle: Path | None) -> tuple[ssl.SSLContext, DeviceAuthorizer, str] | None:
    """Install the bundle if given; return (server context, authorizer, gateway id) or None.

    None means the state directory holds no installed identity (sim board without a bundle).
    """
    from firmware.gateway.identity.install import install_bundle, installed_from

    installed = (Path(state_dir) / IDENTITY / "gateway.json").is_file()
    # Installed already: only a different bundle that is still there is installed again (a
    # flashed board's bundle is consumed once installed; a restart with the same one is a no-op).
    if bundle is not None and (not installed or (Path(bundle).exists()
                                                 and not installed_from(state_dir, Path(bundle)))):
        install_bundle(Path(state_dir), Path(bundle), board)
        consume_bundle(Path(state_dir), Path(bundle))
    elif not installed:
        return None
    meta = installed_identity(state_dir)
    auth = DeviceAuthorizer(state_dir)
    ctx = server_context(state_dir, board, lanpolicy.server_floor(auth.allowlist))
    return ctx, auth, meta["gateway_id"]


def consume_bundle(state_dir: Path, bundle: Path) -> None:
    """Remove an installed bundle that lies in the state directory (a flashed board's): its
    secrets now live encrypted in the keystore; a later start finds the identity installed."""
    try:
        inside = bundle.resolve().is_relative_to(state_dir.resolve())
    except OSError:
        return
    if inside:
        bundle.unlink(missing_ok=True)


def tls_failure_reason(exc: BaseException) -> str:
    """A short, secret-free reason for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "client certificate rejected: %s" % (exc.verify_message or exc.reason)
    if isinstance(exc, ssl.SSLError):
        return "TLS handshake failed: %s" % (exc.reason or exc.__class__.__name__)
    if isinstance(exc, TimeoutError):
        return "TLS handshake timed out"
    return "TLS handshake failed: %s" % exc.__class__.__name__
