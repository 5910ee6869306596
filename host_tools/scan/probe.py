"""Probes run inside a scan namespace; each prints one JSON object.

``python -m host_tools.scan.probe cert HOST PORT``: the server certificate's facts (the
handshake completes without a client certificate even when the server then refuses us).
``python -m host_tools.scan.probe admin HOST PORT``: unauthenticated and malformed requests
against the admin API; every response's status and security headers.
``python -m host_tools.scan.probe udp HOST PORT``: protocol payloads sent to a UDP port that
nmap could only call open|filtered; whether (and to which payload) anything answered.
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


# What UDP services of a home gateway answer to (well-formed requests of the usual protocols).
UDP_PAYLOADS: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("dns", bytes.fromhex("4d4d0100000100000000000006") + b"mamori" + bytes.fromhex(
        "0773657276696365000001 0001".replace(" ", ""))),
    ("snmp", bytes.fromhex("302602010004067075626c6963a019020400000001020100020100300b30090605"
                           "2b06010201050000")),
    ("ntp", b"\x1b" + b"\0" * 47),
    ("ssdp", b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n"
             b"MX: 1\r\nST: ssdp:all\r\n\r\n"),
    ("coap", bytes.fromhex("40014d4dbb") + b".well-known" + b"\x04core"),
    ("text", b"\r\n\r\n"),
]
UDP_WAIT = 0.4


def udp_probe(host: str, port: int) -> dict[str, Any]:
    """Send each payload and wait briefly for any datagram back (an ICMP error ends the probe)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    tried = []
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(UDP_WAIT)
        try:
            s.connect((host, port))  # connected: ICMP port-unreachable surfaces as an error
        except OSError as exc:
            return {"answered": False, "tried": [], "error": str(exc)}
        for name, data in UDP_PAYLOADS:
            tried.append(name)
            try:
                s.send(data)
                reply = s.recv(4096)
            except TimeoutError:
                continue
            except ConnectionRefusedError:
                return {"answered": False, "closed": True, "tried": tried}
            except OSError as exc:
                return {"answered": False, "tried": tried, "error": str(exc)}
            return {"answered": True, "payload": name, "bytes": len(reply), "tried": tried}
    return {"answered": False, "tried": tried}


def main(argv: list[str] | None = None) -> int:
    """Run one probe and print its JSON result."""
    ap = argparse.ArgumentParser(prog="python -m host_tools.scan.probe")
    ap.add_argument("kind", choices=("cert", "admin", "udp"))
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    args = ap.parse_args(argv)
    fn = {"cert": cert_facts, "admin": admin_probe, "udp": udp_probe}[args.kind]
    print(json.dumps(fn(args.host, args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
