"""Loopback TLS handshakes between a context under test and deliberately weak or strong peers."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import warnings
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "localhost"
TIMEOUT = 5.0


class ProbePKI:
    """An ephemeral CA and leaf certificate for 'localhost', written under a scratch dir."""

    def __init__(self, directory: Path, name: str = "probe") -> None:
        self.directory = Path(directory)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"mamori {name} CA")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(hours=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(ca_key, hashes.SHA256()))
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode("ascii")
        self.cert_file = self.directory / f"{name}.crt"
        self.key_file = self.directory / f"{name}.key"
        self.cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        self.key_file.touch(mode=0o600)
        self.key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))


def weak_context(side: str, version: ssl.TLSVersion | None = None,
                 ciphers: str | None = None) -> ssl.SSLContext:
    """A probe peer pinned to one protocol version and/or cipher list (may be insecure)."""
    proto = ssl.PROTOCOL_TLS_CLIENT if side == "client" else ssl.PROTOCOL_TLS_SERVER
    ctx = ssl.SSLContext(proto)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        # OpenSSL 3 refuses TLS < 1.2 at security level 1+: the probe must be able to offer it.
        ctx.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
        with warnings.catch_warnings():  # the probe uses deprecated versions on purpose
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = version
            ctx.maximum_version = version
    elif ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
              server_hostname: str | None = HOST) -> tuple[bool, str]:
    """One TCP handshake over 127.0.0.1; (succeeded, negotiated version or error)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(TIMEOUT)
    port = listener.getsockname()[1]
    server_result: dict[str, str] = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError as exc:
            server_result["error"] = str(exc)
            return
        conn.settimeout(TIMEOUT)
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                server_result["version"] = tls.version() or ""
                tls.recv(1)
        except (OSError, ssl.SSLError) as exc:
            server_result["error"] = str(exc)
        finally:
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
            try:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                    version = tls.version() or ""
                    tls.sendall(b"x")
                ok, detail = True, version
            except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
                ok, detail = False, str(exc)
    finally:
        t.join(TIMEOUT * 2)
        listener.close()
    if ok and "error" in server_result:
        return False, "server: " + server_result["error"]
    return ok, detail


Probe = tuple[str, ssl.SSLContext, ssl.SSLContext, str | None]


def expect_refused(probes: Iterable[Probe], accepted: str) -> tuple[list[str], list[str]]:
    """Run handshakes that must fail, each ``(label, server, client, server_hostname)``.

    Returns (problems, evidence): ``"<accepted> <label> (<detail>)"`` for every handshake that
    succeeded, ``"refused <label>: <detail>"`` for every one refused. Probes are consumed in
    order, so a generator may build each client just before its handshake.
    """
    problems: list[str] = []
    evidence: list[str] = []
    for label, server, client, host in probes:
        ok, detail = handshake(server, client, host)
        if ok:
            problems.append(f"{accepted} {label} ({detail})")
        else:
            evidence.append(f"refused {label}: {detail[:120]}")
    return problems, evidence
