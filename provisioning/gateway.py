"""Gateway installation bundles: identity, trust anchors, CRL, allowlist, initial admin credential.

The bundle is one JSON file, signed by the site CA (kind ``mamori-install-bundle``), carrying the
site CA and root certificates so the gateway can check the chain against its pinned root
fingerprint. When the gateway made its own keys (CSR flow: ``install.enrol_request``) the bundle
holds no private key; otherwise the keys generated here travel once inside the 0600 bundle and
are wrapped under the gateway's device key on import.

The initial admin credential is unique per gateway; the bundle holds only its scrypt hash with
``must_change``; the credential itself is written once to ``<bundle>.admin-credential`` (0600),
never to stdout or JSON.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from firmware.common.boards import load_board
from firmware.common.passwords import hash_credential, new_credential
from firmware.core.acl import DeviceAcl
from firmware.core.errors import ConfigError, IntegrityError
from provisioning import devicelist, pki
from provisioning.files import read_json, write_file, write_json
from provisioning.site import Site, check_id

BUNDLE_KIND = "mamori-install-bundle"
REQUEST_KIND = "mamori-enrol-request/1"
ADMIN_SUFFIX = ".admin-credential"


def _raw_public(key: x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _load_request(path: Path, gw_id: str) -> tuple[Any, bytes]:
    """Public keys from a gateway's enrolment request (CSR + BLE static public key)."""
    req = read_json(path)
    if not isinstance(req, dict) or req.get("format") != REQUEST_KIND:
        raise ConfigError("is not a Mamori enrolment request", str(path))
    try:
        csr = x509.load_pem_x509_csr(str(req["csr"]).encode())
        ble_pub = base64.b64decode(str(req["ble_public"]), validate=True)
    except (KeyError, ValueError, x509.InvalidVersion):
        raise ConfigError("enrolment request is malformed", str(path))
    if not csr.is_signature_valid:
        raise IntegrityError("the CSR's self-signature does not verify", str(path))
    if len(ble_pub) != 32:
        raise ConfigError("BLE public key must be 32 bytes", str(path))
    cn = csr.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    if not cn or cn[0].value != gw_id:
        raise ConfigError("CSR is for another gateway id", str(path))
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
        raise ConfigError("CSR key must be ECDSA P-256", str(path))
    return pub, ble_pub


def parse_grant(text: str) -> dict:
    """`PRINCIPAL:DEVICE:ACTION[,ACTION]` (DEVICE may be *) -> an ACL rule, validated."""
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise ConfigError("--grant must be PRINCIPAL:DEVICE:ACTION[,ACTION], got %r" % text)
    rule = {"principal": parts[0], "device": parts[1],
            "actions": [a for a in parts[2].split(",") if a]}
    DeviceAcl([rule])  # same validation as the gateway applies
    return rule


def release_root(path: Path) -> dict:
    """The release repository's first root metadata: a TUF root file, or a repository (its
    ``metadata/1.root.json``), checked to be root metadata."""
    path = Path(path)
    if path.is_dir():
        path = path / "metadata" / "1.root.json"
    doc = read_json(path)
    signed = doc.get("signed") if isinstance(doc, dict) else None
    if not isinstance(signed, dict) or signed.get("_type") != "root" \
            or not isinstance(doc.get("signatures"), list):
        raise ConfigError("is not TUF root metadata", str(path),
                          hint="give the release repository or its metadata/1.root.json")
    return doc


def issue_gateway(site: Site, board: str, gw_id: str, out: Path,
                  request: Path | None = None, acl: list[dict] | None = None,
                  release: Path | None = None) -> dict:
    """Issue a gateway identity and write its signed bundle (0600) plus the admin credential.

    `acl` is the gateway's per-device access control (default deny): rules
    {principal, device, actions} signed into the bundle with everything else. `release` (a
    release repository or its root metadata) puts the repository's trusted TUF root in the
    bundle, so the gateway accepts its first update.
    """
    check_id(gw_id, "gateway id")
    DeviceAcl(acl or [])
    root_doc = release_root(release) if release is not None else None
    profile = load_board(board)
    out = Path(out)
    admin_path = out.with_name(out.name + ADMIN_SUFFIX)
    for p in (out, admin_path):
        if p.exists():
            raise ConfigError("already exists", str(p), hint="choose another --out")
    ca_key, ca_cert = site.ca_key(), site.ca_cert()
    secrets_in_bundle: dict[str, str] = {}
    if request is not None:
        tls_pub, ble_pub = _load_request(request, gw_id)
        origin = "generated-on-gateway"
    else:
        tls_key = pki.new_key()
        ble_key = x25519.X25519PrivateKey.generate()
        tls_pub, ble_pub = tls_key.public_key(), _raw_public(ble_key.public_key())
        secrets_in_bundle = {
            "tls_key": pki.key_pem(tls_key).decode(),
            "ble_static": base64.b64encode(ble_key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                serialization.NoEncryption())).decode(),
        }
        origin = "generated-at-provisioning"
    if profile.runtime == "micropython":
        # The small-site gateway judges devices by a list it cannot verify with ECDSA: it gets
        # an HMAC key for its device lists (provisioning/devicelist.py).
        secrets_in_bundle["device_list_key"] = devicelist.new_key(site, gw_id)
    cert = pki.issue_leaf(
        ca_key, ca_cert, tls_pub, gw_id, "Mamori site " + site.name, "gateway",
        [pki.GATEWAY_URI + gw_id, pki.SITE_URI + site.site_id], server=True, client=True,
        days=825, dns=[gw_id, "localhost"], ips=["127.0.0.1", "::1"],
    )
    admin = new_credential()
    payload = {
        "gateway_id": gw_id, "board": profile.name, "site_id": site.site_id,
        "site_name": site.name, "level": site.level, "issued": pki.now().isoformat(),
        "key_origin": origin,
        "certificate": pki.cert_pem(cert),
        "ble_static_public": base64.b64encode(ble_pub).decode(),
        "secrets": secrets_in_bundle,
        "site_ca": site.ca_pem(), "root_ca": site.root_pem(), "crl": site.crl_pem(),
        "allowlist": site.allowlist_doc(),
        "platform": {
            "ca": (site.root / "platform/ca.pem").read_text(),
            "command_public_key": (site.root / "platform/command-signing.pub").read_text(),
            "log_escrow_public_key": (site.root / "platform/log-escrow.pub").read_text(),
        },
        "admin": {"hash": hash_credential(admin), "must_change": True},
        "acl": list(acl or []),
    }
    if root_doc is not None:
        payload["release_root"] = root_doc
    doc = pki.sign_doc(ca_key, BUNDLE_KIND, payload)
    doc["chain"] = {"site_ca": site.ca_pem(), "root_ca": site.root_pem()}
    write_json(out, doc, secret=True, exclusive=True)
    write_file(admin_path, ("Initial admin credential for gateway %s (must be changed at first "
                            "use):\n%s\n" % (gw_id, admin)).encode(), secret=True, exclusive=True)
    record = {
        "id": gw_id, "kind": "gateway", "board": profile.name, "transport": "ip",
        "serials": [str(cert.serial_number)], "fingerprint": pki.fingerprint(cert),
        "certificate": pki.cert_pem(cert), "ble_static_public": payload["ble_static_public"],
        "not_after": cert.not_valid_after_utc.isoformat(), "key_origin": origin,
        "issued": payload["issued"],
    }
    site.save_issued(record)
    site.record("issue-gateway", gw_id, kind="gateway", board=profile.name,
                serial=str(cert.serial_number), fingerprint=record["fingerprint"],
                key_origin=origin, admin_credential="unique, hash only, must change")
    return {"gateway_id": gw_id, "bundle": str(out), "admin_credential_file": str(admin_path),
            "fingerprint": record["fingerprint"], "key_origin": origin,
            "root_fingerprint": site.meta["root_fingerprint"]}
