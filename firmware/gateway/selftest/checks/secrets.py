"""Secrets at rest: file permissions and plaintext key material in the state dir (SR2-H-3)."""

from __future__ import annotations

import base64
import binascii
import re
import stat
from typing import Any

from cryptography.hazmat.primitives.serialization import load_der_private_key

from firmware.common.kek import KEK_FILE
from firmware.core import strictjson
from firmware.core.errors import ProtocolError
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, passed

SECRET_DIRS = ("keys",)
SECRET_SUFFIXES = (".key", ".kek", ".seed", ".secret", ".p12", ".pfx")
# Files the design keeps as raw key material on purpose (the fallback KEK, 0600).
RAW_KEY_ALLOWED = (KEK_FILE,)
_PEM_PRIV = re.compile(rb"-----BEGIN ((?:RSA |EC |DSA |OPENSSH )?PRIVATE KEY)-----")
_KEY_FIELDS = {"private_key", "privatekey", "secret_key", "client_secret", "kek", "psk",
               "signing_key", "seed"}
_WRAPPED_B64 = base64.b64encode(b"MKW1")[:5].decode()  # "TUtXM": a devicekey.wrap() blob
_RAW_SIZES = (16, 24, 32, 48, 64)


def _is_secret_path(rel: str) -> bool:
    return rel.split("/")[0] in SECRET_DIRS or rel.endswith(SECRET_SUFFIXES)


@check("secrets.permissions", "Secrets are readable by the gateway only (0600 / 0700)",
       requirements=["SR2-H-3", "UK4"],
       remediation="chmod 700 STATE_DIR/keys, chmod 600 every key file, and remove group/world "
                   "write access everywhere in the state dir")
def permissions(ctx: CheckContext) -> Outcome:
    """No group/world access to key files or the keys dir; nothing world-writable."""
    root = ctx.live_state_dir
    problems, n = [], 0
    root_mode = stat.S_IMODE(root.stat().st_mode)
    if root_mode & 0o002:
        problems.append(f"state dir {root} is world-writable ({root_mode:04o})")
    for _path, rel, st in scan.walk(root):
        if stat.S_ISLNK(st.st_mode):
            continue
        n += 1
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o002:
            problems.append(f"{rel} is world-writable ({mode:04o})")
        elif _is_secret_path(rel) and mode & 0o077:
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "secret file"
            problems.append(f"{rel}: {kind} open to group/others ({mode:04o})")
    for _path, rel, st in scan.regular_files(root):
        if not _is_secret_path(rel) and stat.S_IMODE(st.st_mode) & 0o077:
            content = scan.read_limited(_path, st) or b""
            if _PEM_PRIV.search(content):
                problems.append(f"{rel}: private key open to group/others "
                                f"({stat.S_IMODE(st.st_mode):04o})")
    if problems:
        return failed(*scan.limit(problems))
    return passed(f"{n} entries checked: key files 0600, keys dir 0700, nothing world-writable")


def _json_findings(data: Any, rel: str, out: list[str], path: str = "") -> None:
    if isinstance(data, dict):
        if data.get("kty") and isinstance(data.get("d"), str):
            out.append(f"{rel}: plaintext JWK private key at {path or '/'}")
        for k, v in data.items():
            here = f"{path}/{k}"
            if (str(k).lower() in _KEY_FIELDS and isinstance(v, str) and v
                    and not v.startswith((_WRAPPED_B64, "-----BEGIN ENCRYPTED"))):
                out.append(f"{rel}: plaintext key material in field {here}")
            else:
                _json_findings(v, rel, out, here)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _json_findings(v, rel, out, f"{path}/{i}")


def _looks_raw_key(rel: str, content: bytes) -> bool:
    if not rel.endswith(SECRET_SUFFIXES) and rel.split("/")[0] not in SECRET_DIRS:
        return False
    if content.startswith(b"MKW1"):  # wrapped under the device KEK: not plaintext
        return False
    # Only a hex text form is stripped: raw bytes may begin or end with whitespace values.
    data = content
    text = content.strip()
    if re.fullmatch(rb"(?:[0-9a-fA-F]{2})+", text):
        data = binascii.unhexlify(text)
    return len(data) in _RAW_SIZES and len(set(data)) > len(data) // 3


def find_plaintext_keys(root: Any, known_secrets: list[bytes]) -> list[str]:
    """Findings for plaintext private keys, raw key material and copies of known secrets."""
    findings: list[str] = []
    needles = []
    for s in known_secrets:
        needles += [s, binascii.hexlify(s), base64.b64encode(s)]
    for path, rel, st in scan.regular_files(root):
        content = scan.read_limited(path, st)
        if content is None:
            continue
        m = _PEM_PRIV.search(content)
        if m:
            findings.append(f"{rel}: unencrypted PEM {m.group(1).decode()}")
            continue
        if content[:1] == b"\x30" and len(content) < 16384:
            try:
                load_der_private_key(content, None)
                findings.append(f"{rel}: unencrypted DER private key")
                continue
            except (ValueError, TypeError):
                pass
        if rel.endswith(".json"):
            try:
                _json_findings(strictjson.loads(content, rel), rel, findings)
            except ProtocolError:
                pass
        if rel not in RAW_KEY_ALLOWED:
            if _looks_raw_key(rel, content):
                findings.append(f"{rel}: raw key material")
            elif any(n and n in content for n in needles):
                findings.append(f"{rel}: contains a copy of the device key")
    return findings


@check("secrets.plaintext-keys", "No plaintext private keys or raw key material in the state dir",
       requirements=["SR2-H-3", "SR3-H-6", "UK4"],
       remediation="wrap every key under the device KEK "
                   "(firmware.common.kek.wrap) or "
                   "move it into the secure element; delete stray key files")
def plaintext_keys(ctx: CheckContext) -> Outcome:
    """Scan for PEM/DER/JWK private keys, raw key files and copies of the KEK."""
    root = ctx.live_state_dir
    known = []
    kek = root / KEK_FILE
    if kek.is_file():
        known.append(kek.read_bytes())
    findings = find_plaintext_keys(root, known)
    if findings:
        return failed(*scan.limit(findings))
    n = sum(1 for _ in scan.regular_files(root))
    return passed(f"{n} files scanned: no plaintext private key, raw key or KEK copy")
