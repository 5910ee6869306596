"""Probes run inside a scan namespace; each prints one JSON object.

``python -m host_tools.scan.probe cert HOST PORT``: the server certificate's facts (the
handshake completes without a client certificate even when the server then refuses us).
``python -m host_tools.scan.probe admin HOST PORT``: unauthenticated and malformed requests
against the admin API; every response's status and security headers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import socket
import ssl
import sys
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

TIMEOUT = 5.0
# (method, target, body): what an unauthenticated attacker on the LAN would try first.
ADMIN_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("GET", "/api/status", None),
    ("GET", "/api/settings", None),
    ("GET", "/api/accounts", None),
    ("POST", "/api/accounts", b'{"name":"intruder","role":"admin"}'),
    ("GET", "/api/diagnostics/..%2f..%2f..%2fetc%2fpasswd", None),
    ("GET", "/api/../../../../etc/passwd", None),
    ("POST", "/api/login", b"{not json"),
    ("TRACE", "/api/status", None),
]


def _insecure() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the probe inspects the certificate itself
    return ctx


def cert_facts(host: str, port: int) -> dict[str, Any]:
    """Facts of the certificate the server presents."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as raw, \
                _insecure().wrap_socket(raw, server_hostname=None) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        return {"error": f"handshake failed: {exc}"}
    if not der:
        return {"error": "no certificate presented"}
    cert = x509.load_der_x509_certificate(der)
    now = dt.datetime.now(dt.UTC)
    pub = cert.public_key()
    ktype, bits = "other", 0
    if isinstance(pub, ec.EllipticCurvePublicKey):
        ktype, bits = "EC", pub.curve.key_size
    elif isinstance(pub, rsa.RSAPublicKey):
        ktype, bits = "RSA", pub.key_size
    sig = cert.signature_hash_algorithm
    return {"subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "self_signed": cert.subject == cert.issuer,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "expired": cert.not_valid_after_utc < now,
            "not_yet_valid": cert.not_valid_before_utc > now,
            "signature_algorithm": f"{ktype}-with-{sig.name if sig else 'none'}",
            "key_type": ktype, "public_bits": bits}


def admin_probe(host: str, port: int) -> dict[str, Any]:
    """Send the ADMIN_REQUESTS; record status and response headers of each."""
    out = []
    for method, target, body in ADMIN_REQUESTS:
        conn = http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=_insecure())
        try:
            hdrs = {"Content-Type": "application/json"} if body is not None else {}
            conn.request(method, target, body=body, headers=hdrs)
            resp = conn.getresponse()
            resp.read(65536)
            out.append({"method": method, "target": target, "status": resp.status,
                        "headers": {k.lower(): v for k, v in resp.getheaders()}})
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            out.append({"method": method, "target": target, "status": 0,
                        "error": f"{type(exc).__name__}: {exc}", "headers": {}})
        finally:
            conn.close()
    return {"requests": out}


def main(argv: list[str] | None = None) -> int:
    """Run one probe and print its JSON result."""
    ap = argparse.ArgumentParser(prog="python -m host_tools.scan.probe")
    ap.add_argument("kind", choices=("cert", "admin"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    args = ap.parse_args(argv)
    fn = cert_facts if args.kind == "cert" else admin_probe
    print(json.dumps(fn(args.host, args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
