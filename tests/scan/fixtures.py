"""Test material for the release scan: a vulnerable SBOM, OSV advisories, a TLS 1.0 server."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VULN_ID = "GHSA-test-0001"


def sbom(path: Path, packages: dict[str, str]) -> Path:
    """A CycloneDX SBOM pinning these PyPI packages."""
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "components": [{"type": "library", "name": n, "version": v,
                           "purl": f"pkg:pypi/{n}@{v}", "bom-ref": f"pkg:pypi/{n}"}
                          for n, v in packages.items()]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def advisory(vid: str, name: str, introduced: str = "0", fixed: str | None = None,
             last_affected: str | None = None, versions: list[str] | None = None,
             ecosystem: str = "PyPI") -> dict:
    """One OSV advisory for a package."""
    events: list[dict[str, str]] = [{"introduced": introduced}]
    if fixed:
        events.append({"fixed": fixed})
    if last_affected:
        events.append({"last_affected": last_affected})
    return {"id": vid, "summary": f"test advisory for {name}", "aliases": ["CVE-2099-0001"],
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}],
                          "versions": versions or []}]}


def advisories(path: Path, *advs: dict) -> Path:
    """An advisory file in the OSV query-batch shape ``{"vulns": [...]}``."""
    path.write_text(json.dumps({"vulns": list(advs)}), encoding="utf-8")
    return path


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate and key for the weak TLS endpoint."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak-endpoint")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256()))
    c, k = directory / "weak.crt", directory / "weak.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


def tls10_server(port: int, cert: Path, key: Path) -> str:
    """A --stage-extra spec: openssl s_server speaking only TLS 1.0."""
    cmd = ["openssl", "s_server", "-accept", str(port), "-tls1", "-cipher", "ALL:@SECLEVEL=0",
           "-cert", str(cert), "-key", str(key), "-quiet"]
    return f"tcp/{port}={shlex.join(cmd)}"
