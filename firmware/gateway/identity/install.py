"""Import a signed installation bundle into a gateway state directory (CPython).

Checks, in order: the bundle's format, the site CA chains to the service root, the root is the
pinned one (``root_fingerprint`` argument, or the root of a previous install), the site CA's
signature over the payload, the board. Then public material goes to ``identity/`` and every
secret into the key store (wrapped under the device KEK); the bundle file itself is never copied.

State-dir layout after install::

    identity/gateway.json     gateway id, site, level, board, key origin, bundle digest
    identity/gateway.pem      TLS certificate (LAN server + WAN client)
    identity/gateway-key.pem  TLS private key, PKCS#8 encrypted; passphrase in the key store
    identity/ca-chain.pem     site CA + root (verifies devices), site-ca.pem, root-ca.pem
    identity/crl.pem          revocation list
    identity/allowlist.json   signed model allowlist
    identity/platform-ca.pem  pinned platform CA; identity/platform-command.pub (Ed25519)
    identity/acl.json         per-device ACL rules (default deny: empty)
    identity/release-root.json  the release repository's first TUF root (when the bundle has it)
    keys/store/*.key          gateway-tls-passphrase, ble-static, admin-credential (wrapped)
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.common.passwords import AdminCredential
from firmware.common.signeddoc import canonical
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.identity import deviceinfo
from firmware.gateway.identity.bundledoc import BUNDLE_KIND, MAX_BUNDLE, parse_bundle
from firmware.gateway.identity.keystore import KeyStore

REQUEST_FORMAT = "mamori-enrol-request/1"
IDENTITY = "identity"
TLS_PASS = "gateway-tls-passphrase"  # noqa: S105 - a key-store entry name
BLE_STATIC = "ble-static"
ADMIN = "admin-credential"
PENDING_TLS = "pending-tls-key"
PENDING_BLE = "pending-ble-static"
CRYPTOPERIOD = 825
RELEASE_ROOT_FILE = "release-root.json"


def _canonical(payload: dict) -> bytes:
    return canonical({"kind": BUNDLE_KIND, "payload": payload}).encode()


def _cert(pem: Any, what: str) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(str(pem).encode())
        cert.public_key()  # parsed lazily: an altered key algorithm or curve fails here
    except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm):
        # an altered version field is InvalidVersion, an altered curve UnsupportedAlgorithm:
        # neither is a ValueError
        raise IntegrityError("bundle %s is not a PEM certificate" % what)
    return cert


def _issued_by(leaf: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    try:
        leaf.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        raise IntegrityError("bundle %s is not signed by its issuer" % what,
                             "the bundle was forged or belongs to another service")


def verify_bundle(path: Path, root_fingerprint: str | None) -> dict:
    """Parse and verify a bundle; return its payload (IntegrityError on any mismatch)."""
    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_BUNDLE + 1)
    except OSError as exc:
        raise ConfigError("cannot read the bundle: %s" % (exc.strerror or exc), str(path))
    return verify_bundle_bytes(raw, str(path), root_fingerprint)


def verify_bundle_bytes(raw: bytes, path: str, root_fingerprint: str | None) -> dict:
    """verify_bundle() on bytes already read; `path` names the file in errors."""
    try:
        return _verify(parse_bundle(raw, path), root_fingerprint)
    except IntegrityError as exc:
        if exc.message.startswith(path):
            raise
        raise IntegrityError("%s: %s" % (path, exc.message), exc.hint)


def _verify(doc: dict, root_fingerprint: str | None) -> dict:
    """Chain, pin and signature of a bundle whose shape parse_bundle() checked."""
    payload, chain = doc["payload"], doc["chain"]
    try:
        sig = base64.b64decode(doc["sig"], validate=True)
    except ValueError:
        raise IntegrityError("field 'sig' is not base64")
    root = _cert(chain["root_ca"], "root CA (field 'chain.root_ca')")
    site_ca = _cert(chain["site_ca"], "site CA (field 'chain.site_ca')")
    fp = root.fingerprint(hashes.SHA256()).hex()
    # No pin yet (first installation): the installer carried the bundle; the root is pinned now.
    if root_fingerprint is not None and fp != root_fingerprint.lower().replace(":", ""):
        raise IntegrityError("bundle is signed under another service root",
                             "check the fingerprint with the site operator")
    _issued_by(root, root, "root CA")
    _issued_by(site_ca, root, "site CA")
    pub = site_ca.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise IntegrityError("site CA key is not ECDSA")
    try:
        pub.verify(sig, _canonical(payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise IntegrityError("bundle signature does not verify", "it was altered after signing")
    if payload.get("site_ca") != chain.get("site_ca") or payload.get("root_ca") != chain.get(
            "root_ca"):
        raise IntegrityError("bundle chain does not match its signed content")
    leaf = _cert(payload["certificate"], "gateway certificate (field 'payload.certificate')")
    _issued_by(leaf, site_ca, "gateway certificate")
    payload["_root_fingerprint"] = fp
    return payload


def _pinned_root(state_dir: Path) -> str | None:
    path = state_dir / IDENTITY / "root-ca.pem"
    if not path.is_file():
        return None
    return _cert(path.read_text(), "installed root").fingerprint(hashes.SHA256()).hex()


def write_file(path: Path, data: bytes, secret: bool) -> None:
    """Atomic write (tmp + fsync + rename), 0600 for secrets and 0644 otherwise."""
    atomic_write(path, data, 0o600 if secret else 0o644)


def _write_public(path: Path, text: str) -> None:
    write_file(path, text.encode(), secret=False)


def _install_bundle_crl(ident: Path, pem: str, site_ca_pem: str) -> None:
    """The bundle's CRL, unless a newer one was installed since (no rollback by re-install)."""
    from firmware.common import crl as crlmod

    ca = _cert(site_ca_pem, "site CA")
    new = crlmod.verified(pem, ca)
    try:
        old = crlmod.verified((ident / "crl.pem").read_bytes(), ca)
    except (OSError, IntegrityError):
        old = None
    if old is None or new.number > old.number:
        _write_public(ident / "crl.pem", pem)


def install_bundle(state_dir: Path, bundle_path: Path, board: Board | None = None,
                   root_fingerprint: str | None = None) -> dict:
    """Verify and import an installation bundle; returns a summary without secrets."""
    state_dir = Path(state_dir)
    pinned = _pinned_root(state_dir)
    if pinned and root_fingerprint and pinned != root_fingerprint.lower():
        raise IntegrityError("this gateway is already pinned to another service root")
    payload = verify_bundle(bundle_path, root_fingerprint or pinned)
    if board is not None and payload["board"] != board.name:
        raise ConfigError("bundle is for board %r, not %r" % (payload["board"], board.name))
    ident = state_dir / IDENTITY
    meta_path = ident / "gateway.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("gateway_id") != payload["gateway_id"]:
            raise StateError("this state directory belongs to gateway %r" % old["gateway_id"],
                             "reset the gateway before installing another identity")
    ks = KeyStore(state_dir, board)
    cert = _cert(payload["certificate"], "gateway certificate")
    sec = payload.get("secrets") or {}
    if sec:
        try:
            tls_key = serialization.load_pem_private_key(sec["tls_key"].encode(), None)
            ble_raw = base64.b64decode(sec["ble_static"], validate=True)
        except (KeyError, ValueError, TypeError, UnsupportedAlgorithm):
            raise IntegrityError("bundle secrets are malformed (field 'payload.secrets')")
        origin = "generated at provisioning, delivered in the bundle"
    else:
        tls_key = serialization.load_der_private_key(ks.get(PENDING_TLS), None)
        ble_raw = ks.get(PENDING_BLE)
        origin = "generated on the gateway (CSR)"
    if not isinstance(tls_key, ec.EllipticCurvePrivateKey):
        raise IntegrityError("bundle TLS key is not ECDSA")
    if tls_key.public_key() != cert.public_key():
        raise IntegrityError("the gateway certificate does not match its private key")
    try:
        ble_priv = x25519.X25519PrivateKey.from_private_bytes(ble_raw)
    except ValueError:
        raise IntegrityError("bundle BLE static key is not an X25519 key")
    ble_pub = ble_priv.public_key().public_bytes(serialization.Encoding.Raw,
                                                 serialization.PublicFormat.Raw)
    if base64.b64encode(ble_pub).decode() != payload["ble_static_public"]:
        raise IntegrityError("BLE static key does not match the bundle's public key")
    passphrase = secrets.token_urlsafe(32).encode()
    ks.put(TLS_PASS, passphrase, "passphrase of identity/gateway-key.pem (TLS identity key "
           "ECDSA P-256, LAN server and WAN client)", "ECDSA P-256 / PBES2 AES-256-CBC", 256,
           origin, CRYPTOPERIOD, replace=True)
    ks.put(BLE_STATIC, ble_raw, "BLE Noise IK static key", "X25519", 256, origin, CRYPTOPERIOD,
           replace=True)
    ks.put(ADMIN, json.dumps(payload["admin"]).encode(), "local admin credential (scrypt hash)",
           "scrypt N=16384 r=8 p=1", 256, "generated at provisioning, unique per gateway",
           365, replace=True)
    write_file(ident / "gateway-key.pem", tls_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase)), secret=True)
    _write_public(ident / "gateway.pem", payload["certificate"] + payload["site_ca"])
    _write_public(ident / "site-ca.pem", payload["site_ca"])
    _write_public(ident / "root-ca.pem", payload["root_ca"])
    _write_public(ident / "ca-chain.pem", payload["site_ca"] + payload["root_ca"])
    _install_bundle_crl(ident, payload["crl"], payload["site_ca"])
    _write_public(ident / "allowlist.json", json.dumps(payload["allowlist"], indent=2))
    _write_public(ident / "platform-ca.pem", payload["platform"]["ca"])
    _write_public(ident / "platform-command.pub", payload["platform"]["command_public_key"])
    if payload["platform"].get("log_escrow_public_key"):
        _write_public(ident / "platform-log-escrow.pub",
                      payload["platform"]["log_escrow_public_key"])
    _write_public(ident / "ble-static.pub", payload["ble_static_public"] + "\n")
    _write_public(ident / "acl.json", json.dumps(payload.get("acl", []), indent=2))
    if isinstance(payload.get("release_root"), dict):
        # The release repository's first root: the OTA agent trusts it (update/agent.py).
        _write_public(ident / RELEASE_ROOT_FILE, json.dumps(payload["release_root"]))
    for pending in (PENDING_TLS, PENDING_BLE):
        if ks.has(pending):
            ks.delete(pending)
    meta = {"gateway_id": payload["gateway_id"], "site_id": payload["site_id"],
            "site_name": payload["site_name"], "level": payload["level"],
            "board": payload["board"], "key_origin": origin,
            "installed": datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat(),
            "bundle_sha256": hashlib.sha256(Path(bundle_path).read_bytes()).hexdigest(),
            "certificate_fingerprint": cert.fingerprint(hashes.SHA256()).hex(),
            "root_fingerprint": payload["_root_fingerprint"],
            "root_trust": "pinned" if (root_fingerprint or pinned) else "first-install"}
    _write_public(meta_path, json.dumps(meta, indent=2))
    if not deviceinfo.path(state_dir).is_file():
        # Security contact, disclosure policy and support period (UK2, PSTI-2, PSTI-3, R3-8).
        deviceinfo.save(state_dir, deviceinfo.default_info(payload["board"],
                                                           int(payload["level"])))
    return meta


def installed_from(state_dir: Path, bundle_path: Path) -> bool:
    """Whether this very bundle is already installed here (a restart with the same --bundle
    must not reinstall it: that would reset the changed admin credential and the keys)."""
    meta = Path(state_dir) / IDENTITY / "gateway.json"
    try:
        digest = json.loads(meta.read_text()).get("bundle_sha256")
        return bool(digest) and digest == hashlib.sha256(Path(bundle_path).read_bytes()
                                                         ).hexdigest()
    except (OSError, ValueError, AttributeError):
        return False


def installed(state_dir: Path) -> bool:
    """Whether an installation bundle has been imported into this state directory."""
    return (Path(state_dir) / IDENTITY / "gateway.json").is_file()


def installed_identity(state_dir: Path) -> dict:
    """The installed gateway's public identity (StateError when not installed)."""
    path = Path(state_dir) / IDENTITY / "gateway.json"
    if not path.is_file():
        raise StateError("no installation bundle has been imported into %s" % state_dir,
                         "run the gateway once with --bundle FILE")
    return dict(json.loads(path.read_text()))


def enrol_request(state_dir: Path, gw_id: str, out: Path, board: Board | None = None) -> dict:
    """CSR flow: make the gateway's keys here (wrapped) and write the public request file."""
    from cryptography.x509.oid import NameOID

    ks = KeyStore(state_dir, board)
    key = ec.generate_private_key(ec.SECP256R1())
    ble = x25519.X25519PrivateKey.generate()
    ks.put(PENDING_TLS, key.private_bytes(serialization.Encoding.DER,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()),
           "TLS identity key awaiting its certificate", "ECDSA P-256", 256,
           "generated on the gateway", CRYPTOPERIOD, replace=True)
    ks.put(PENDING_BLE, ble.private_bytes(serialization.Encoding.Raw,
                                          serialization.PrivateFormat.Raw,
                                          serialization.NoEncryption()),
           "BLE static key awaiting installation", "X25519", 256, "generated on the gateway",
           CRYPTOPERIOD, replace=True)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gw_id)]))
           .sign(key, hashes.SHA256()))
    req = {"format": REQUEST_FORMAT, "gateway_id": gw_id,
           "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
           "ble_public": base64.b64encode(ble.public_key().public_bytes(
               serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()}
    write_file(Path(out), (json.dumps(req, indent=2) + "\n").encode(), secret=False)
    return {"gateway_id": gw_id, "request": str(out)}


def tls_key_passphrase(state_dir: Path, board: Board | None = None) -> bytes:
    """The passphrase of identity/gateway-key.pem (from the key store)."""
    return KeyStore(state_dir, board).get(TLS_PASS)


def admin_credential(state_dir: Path) -> AdminCredential:
    """The local admin credential record."""
    return AdminCredential(json.loads(KeyStore(state_dir).get(ADMIN)))


def authenticate_admin(state_dir: Path, secret: str) -> None:
    """Refuse a wrong credential and the unchanged initial one (MustChangeCredential)."""
    admin_credential(state_dir).authenticate(secret)


def change_admin_credential(state_dir: Path, old: str, new: str) -> None:
    """Change the admin credential (first-use change included) and persist it wrapped."""
    rec = admin_credential(state_dir).change(old, new)
    ks = KeyStore(state_dir)
    ks.put(ADMIN, json.dumps(rec).encode(), "local admin credential (scrypt hash)",
           "scrypt N=16384 r=8 p=1", 256, "set by the administrator", 365, replace=True)
