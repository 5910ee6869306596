"""Key-management checks per NIST SP 800-57 (SR3-H-7, SR2-H-3, UK4).

The gateway's key inventory is the key store's ``keys/inventory.json``
(firmware.gateway.identity.keystore) plus the keys that components keep themselves and
declare here (the device KEK and the access log's keys; see COMPONENT_KEYS). Every key
file found in the state directory must be in that inventory and every inventoried key must
exist; sizes must give at least 112-bit security;
ages must be within the cryptoperiod; key files must be 0600 and wrapped or encrypted.
Key material is only ever unwrapped in memory, to prove the wrapping and measure the key; no
secret appears in the evidence.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import stat
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from firmware.common import kek as devicekey
from firmware.common.accesslog.files import DATA_LABEL, SEAL_LABEL, SIGN_LABEL
from firmware.core.errors import MamoriError
from firmware.gateway.identity import keystore
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, passed

MIN_STRENGTH = 112
# Keys components keep outside the key store: path -> inventory entry. ``label`` is the AAD the
# component wraps it with (None: raw by design, i.e. the fallback KEK itself); ``created_from``
# says where the creation date comes from; a cryptoperiod of None means the key evolves
# (forward-secure seal key, rewritten at every checkpoint).
COMPONENT_KEYS: dict[str, dict[str, Any]] = {
    devicekey.KEK_FILE: {
        "name": "device-kek", "purpose": "device-unique key-encryption key (wraps every other "
        "secret at rest)", "algorithm": "AES-256-GCM key wrap", "size_bits": 256,
        "cryptoperiod_days": 730, "label": None, "created_from": "mtime",
        "owner": "firmware.common.kek"},
    "accesslog/keys/data.key": {
        "name": "accesslog-data", "purpose": "access-log record encryption",
        "algorithm": "AES-256-GCM", "size_bits": 256, "cryptoperiod_days": 730,
        "label": DATA_LABEL, "created_from": "accesslog", "owner": "firmware.gateway.accesslog"},
    "accesslog/keys/sign.key": {
        "name": "accesslog-sign", "purpose": "access-log checkpoint signatures",
        "algorithm": "Ed25519", "size_bits": 256, "cryptoperiod_days": 1095,
        "label": SIGN_LABEL, "created_from": "accesslog", "owner": "firmware.gateway.accesslog"},
    "accesslog/keys/seal.key": {
        "name": "accesslog-seal", "purpose": "access-log forward-secure seal key (evolves at "
        "every checkpoint)", "algorithm": "HMAC-SHA-256", "size_bits": 256,
        "cryptoperiod_days": None, "label": SEAL_LABEL, "created_from": "mtime",
        "owner": "firmware.gateway.accesslog"},
    "accesslog/outbox/keys.bin": {
        "name": "accesslog-platform-bundle", "purpose": "access-log keys awaiting escrow to "
        "the platform (erased once delivered)", "algorithm": "AES-256-GCM / HMAC-SHA-256",
        "size_bits": 256, "cryptoperiod_days": None,
        "label": b"mamori-accesslog-platform-bundle", "created_from": "accesslog",
        "owner": "firmware.gateway.accesslog"},
}
# Encrypted private keys kept as files, covered by the inventory entry of their passphrase.
ENCRYPTED_KEY_FILES = {"identity/gateway-key.pem": "gateway-tls-passphrase"}
KEY_SUFFIXES = (".key", ".kek", ".seed", ".secret", ".p12", ".pfx")
NOT_KEYS = ("keys/inventory.json",)
_PEM_KEY = re.compile(rb"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA |OPENSSH )?PRIVATE KEY)-----")
KEY_REQS = ["SR3-H-7", "UK4"]


# Built from parts so the source holds no literal key header.
ENCRYPTED_PEM = b"-----BEGIN " + b"ENCRYPTED PRIVATE KEY-----"


def _is_key_file(rel: str, content: bytes | None) -> bool:
    if rel in NOT_KEYS or rel.endswith(".tmp") or rel.endswith("/.lock"):
        return False
    if rel.split("/")[0] == "keys" or rel.endswith(KEY_SUFFIXES) or rel in COMPONENT_KEYS:
        return True
    return content is not None and _PEM_KEY.search(content) is not None


def key_files(root: Path) -> dict[str, Path]:
    """Every file in the state dir that holds key material (relative path -> path)."""
    out = {}
    for path, rel, st in scan.regular_files(root):
        content = scan.read_limited(path, st) if st.st_size < 65536 else None
        if _is_key_file(rel, content):
            out[rel] = path
    return out


def _store_entries(root: Path) -> dict[str, dict[str, Any]]:
    """Key-store inventory, keyed by the relative path of each entry's file."""
    ks = keystore.KeyStore(root)
    out = {}
    for e in ks.inventory():
        out[f"{keystore.STORE_DIR}/{e['name']}.key"] = dict(
            e, owner="firmware.gateway.identity.keystore")
    return out


def _inventory_problem(root: Path) -> str | None:
    path = root / keystore.INVENTORY
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        ok = isinstance(doc, dict) and all(
            isinstance(e, dict) and {"name", "algorithm", "size_bits", "created",
                                     "cryptoperiod_days"} <= set(e) for e in doc["keys"])
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    return None if ok else f"{keystore.INVENTORY} is unreadable or lacks SP 800-57 fields"


@check("keys.inventory", "Key inventory matches the keys present (none missing, none unlisted)",
       requirements=KEY_REQS,
       remediation="store every key through firmware.gateway.identity.keystore.KeyStore "
                   "(which records "
                   "it in keys/inventory.json) and zeroise stray key files; restore or delete "
                   "inventory entries whose key is gone")
def inventory_matches(ctx: CheckContext) -> Outcome:
    """Key files in the state dir == key-store inventory ∪ the components' declared keys."""
    root = ctx.live_state_dir
    bad = _inventory_problem(root)
    if bad:
        return failed(bad)
    present = key_files(root)
    store = _store_entries(root)
    problems = []
    for rel in sorted(present):
        if rel not in store and rel not in COMPONENT_KEYS and rel not in ENCRYPTED_KEY_FILES:
            problems.append(f"{rel}: key file not in the inventory")
    for rel, e in sorted(store.items()):
        if rel not in present:
            problems.append(f"inventory lists {e['name']} but {rel} is missing")
    for rel, name in ENCRYPTED_KEY_FILES.items():
        if rel in present and f"{keystore.STORE_DIR}/{name}.key" not in store:
            problems.append(f"{rel}: encrypted key whose passphrase entry {name} is not in "
                            "the inventory")
    if problems:
        return failed(*scan.limit(problems))
    listed = [f"{e['name']} ({e['algorithm']}, {e['size_bits']} bit, {e['owner']})"
              for rel, e in sorted(list(store.items()) + list(COMPONENT_KEYS.items()))
              if rel in present]
    listed += [f"{rel} (encrypted under {n})" for rel, n in ENCRYPTED_KEY_FILES.items()
               if rel in present]
    return passed(f"{len(present)} key file(s), all inventoried", *listed)


def strength_bits(algorithm: str, size_bits: int) -> int:
    """Security strength (SP 800-57 Part 1 Table 2) of a key from its algorithm and size."""
    a = algorithm.upper()
    if re.search(r"\b(RSA|DSA|DH)\b", a) and "ECD" not in a:
        for size, strength in ((15360, 256), (7680, 192), (3072, 128), (2048, 112)):
            if size_bits >= size:
                return strength
        return 80 if size_bits >= 1024 else 0
    if re.search(r"\b(EC|ECDSA|ECDH|P-\d+|X25519|ED25519|X448|ED448|CURVE)", a):
        return size_bits // 2
    return size_bits  # symmetric keys, MACs, password-hash secrets


def _public_key_strength(key: Any) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}", strength_bits("RSA", key.key_size)
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return f"DSA-{key.key_size}", strength_bits("DSA", key.key_size)
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"EC {key.curve.name}", strength_bits("EC", key.curve.key_size)
    return type(key).__name__.replace("PublicKey", "").replace("PrivateKey", ""), 128


def _age_problem(name: str, created: dt.date, period: int | None, today: dt.date) -> str | None:
    if period is None:
        return None
    age = (today - created).days
    if age > period:
        return (f"{name}: {age} days old, past its {period}-day cryptoperiod "
                f"(created {created.isoformat()})")
    return None


def _created(root: Path, rel: str, e: dict[str, Any]) -> dt.date:
    if e.get("created_from") == "accesslog":
        try:
            info = json.loads((root / "accesslog" / "log.json").read_text(encoding="utf-8"))
            return dt.datetime.fromtimestamp(float(info["created"]), dt.UTC).date()
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return dt.datetime.fromtimestamp((root / rel).stat().st_mtime, dt.UTC).date()


def _store_material(ks: keystore.KeyStore, name: str) -> tuple[str, int] | None:
    """(description, strength) of a stored private key, if the entry holds one (in memory)."""
    try:
        secret = ks.get(name)
    except MamoriError:
        return None
    if secret[:1] != b"\x30":
        return None
    try:
        key = load_der_private_key(secret, None)
    except (ValueError, TypeError):
        return None
    return _public_key_strength(key)


@check("keys.strength", "Keys give ≥ 112-bit strength and are within their cryptoperiod",
       requirements=KEY_REQS,
       remediation="rotate keys past their cryptoperiod (re-provision or `KeyStore.put(..., "
                   "replace=True)`), replace weak keys (RSA < 2048, EC < 224, symmetric < 128)")
def strength_and_age(ctx: CheckContext) -> Outcome:
    """Inventory sizes, real key material where readable, certificates, and key ages."""
    root = ctx.live_state_dir
    present = key_files(root)
    ks = keystore.KeyStore(root)
    problems, evidence = [], []
    try:
        entries = ks.inventory()
    except (OSError, ValueError) as exc:
        return failed(f"{keystore.INVENTORY} unreadable: {exc}")
    for e in entries:
        name = e["name"]
        s = strength_bits(str(e["algorithm"]), int(e["size_bits"]))
        if s < MIN_STRENGTH:
            problems.append(f"{name}: {e['algorithm']} {e['size_bits']} bit gives {s}-bit "
                            "strength (< 112)")
        real = _store_material(ks, name)
        if real is not None and real[1] < MIN_STRENGTH:
            problems.append(f"{name}: stored key is {real[0]} ({real[1]}-bit strength, "
                            f"inventory says {e['algorithm']} {e['size_bits']})")
        try:
            created = dt.datetime.fromisoformat(str(e["created"])).date()
        except ValueError:
            problems.append(f"{name}: creation date {e['created']!r} is not ISO 8601")
            continue
        age = _age_problem(name, created, int(e["cryptoperiod_days"]), ctx.today)
        if age:
            problems.append(age)
        else:
            evidence.append(f"{name}: {s}-bit strength, cryptoperiod {e['cryptoperiod_days']} d")
    for rel, e in COMPONENT_KEYS.items():
        if rel not in present:
            continue
        age = _age_problem(e["name"], _created(root, rel, e), e["cryptoperiod_days"], ctx.today)
        if age:
            problems.append(age)
        else:
            evidence.append(f"{e['name']}: {strength_bits(e['algorithm'], e['size_bits'])}-bit "
                            "strength")
    for path, rel, _st in scan.regular_files(root):
        if not rel.endswith((".pem", ".crt")) or rel in present:
            continue
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError:
            continue
        for c in certs:
            desc, s = _public_key_strength(c.public_key())
            who = c.subject.rfc4514_string()[:80]
            if s < MIN_STRENGTH:
                problems.append(f"{rel}: certificate {who} has a {desc} key ({s}-bit strength)")
            elif c.not_valid_after_utc.date() < ctx.today:
                problems.append(f"{rel}: certificate {who} expired on "
                                f"{c.not_valid_after_utc.date().isoformat()}")
            else:
                evidence.append(f"{rel}: {desc} ({s}-bit)")
    if problems:
        return failed(*scan.limit(problems))
    return passed(*scan.limit(evidence) or ["no keys present"])


def _wrapped_ok(kek: bytes, blob: bytes, label: bytes) -> bool:
    try:
        devicekey.unwrap(kek, blob, label)
        return True
    except MamoriError:
        return False


@check("keys.storage", "Key files are 0600 and wrapped under the device key (never plaintext)",
       requirements=["SR2-H-3", "SR3-H-7", "UK4"],
       remediation="chmod 600 key files; store secrets with KeyStore.put (AES-256-GCM under the "
                   "device KEK) and private keys as encrypted PKCS#8 only")
def storage(ctx: CheckContext) -> Outcome:
    """Every key file: owner-only mode, and it unwraps under the device KEK with its label."""
    root = ctx.live_state_dir
    present = key_files(root)
    store = _store_entries(root)
    try:
        kek = devicekey.device_kek(root, create=False)
    except MamoriError as exc:
        kek = b""
        kek_problem = str(exc)
    else:
        kek_problem = ""
    problems = []
    for rel, path in sorted(present.items()):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            problems.append(f"{rel}: mode {mode:04o}, key files must be 0600")
        blob = path.read_bytes()
        if rel in store:
            label = b"mamori-keystore:" + str(store[rel]["name"]).encode()
        elif rel in COMPONENT_KEYS:
            label = COMPONENT_KEYS[rel]["label"]
            if label is None:  # the fallback KEK itself: raw by design, 0600 is its protection
                continue
        elif rel in ENCRYPTED_KEY_FILES:
            if ENCRYPTED_PEM not in blob:
                problems.append(f"{rel}: private key is not encrypted")
            continue
        else:
            m = _PEM_KEY.search(blob)
            if m and not m.group(1).startswith(b"ENCRYPTED"):
                problems.append(f"{rel}: plaintext {m.group(1).decode()} (not inventoried)")
            elif not blob.startswith(b"MKW1"):
                problems.append(f"{rel}: not wrapped under the device key (not inventoried)")
            continue
        if not blob.startswith(b"MKW1"):
            problems.append(f"{rel}: stored in plaintext, not wrapped under the device key")
        elif kek and not _wrapped_ok(kek, blob, label):
            problems.append(f"{rel}: does not unwrap under this device's KEK with its label "
                            "(foreign, tampered or mislabelled)")
    if kek_problem and len(present) > 0:
        problems.append(kek_problem)
    if problems:
        return failed(*scan.limit(problems))
    return passed(f"{len(present)} key file(s): 0600, each unwraps under the device KEK with its "
                  "own label (AES-256-GCM); the file KEK itself is 0600")
