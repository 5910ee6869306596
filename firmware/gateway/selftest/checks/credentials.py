"""No default or plaintext passwords in the state dir (C6, UK1, SB327-2, PSTI-1)."""

from __future__ import annotations

import configparser
import re
from typing import Any

from firmware.common import stricttoml
from firmware.core import strictjson
from firmware.core.errors import ConfigError, ProtocolError
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, passed

PASSWORD_FIELDS = re.compile(r"^(.*[_-])?(password|passwd|passphrase|pwd|pincode|wpa_psk)$",
                             re.IGNORECASE)
# Universal defaults and trivially guessable values (UK1 / PSTI-1).
DEFAULTS = {"", "admin", "administrator", "password", "passw0rd", "1234", "12345", "123456",
            "12345678", "0000", "default", "changeme", "root", "toor", "raspberry", "mamori",
            "guest", "user", "letmein", "qwerty", "secret", "pi", "ubnt", "support"}
HASH_PREFIXES = ("$argon2", "$scrypt$", "$2a$", "$2b$", "$2y$", "$pbkdf2", "$6$", "$5$",
                 "pbkdf2:", "pbkdf2_sha256$", "scrypt:", "TUtXM")
TEXT_SUFFIXES = (".json", ".toml", ".ini", ".conf", ".cfg", ".env", ".yaml", ".yml", ".txt")
_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*[:=]\s*\"?([^\"\n#]*)\"?\s*$")


def _pairs(data: Any, path: str = "") -> list[tuple[str, str, Any]]:
    out = []
    if isinstance(data, dict):
        for k, v in data.items():
            out.append((str(k), f"{path}/{k}", v))
            out += _pairs(v, f"{path}/{k}")
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _pairs(v, f"{path}/{i}")
    return out


def _parse(rel: str, text: str) -> list[tuple[str, str, Any]]:
    if rel.endswith(".json"):
        try:
            return _pairs(strictjson.loads(text, rel))
        except ProtocolError:
            return []
    if rel.endswith(".toml"):
        try:
            return _pairs(stricttoml.loads(text.encode(), rel))
        except ConfigError:
            return []
    if rel.endswith((".ini", ".cfg")):
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(text)
            return [(k, f"[{s}]/{k}", v) for s in cp.sections() for k, v in cp[s].items()]
        except configparser.Error:
            pass
    out = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            out.append((m.group(1), m.group(1), m.group(2).strip()))
    return out


def find_weak_credentials(root: Any) -> list[str]:
    """Findings for default/guessable or plaintext passwords in configuration-like files."""
    findings = []
    for path, rel, st in scan.regular_files(root):
        if not rel.endswith(TEXT_SUFFIXES):
            continue
        content = scan.read_limited(path, st)
        if content is None:
            continue
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            continue
        for key, where, value in _parse(rel, text):
            if not PASSWORD_FIELDS.match(key) or not isinstance(value, str):
                continue
            v = str(value)
            # The value itself is never reported: only where it is and what is wrong.
            if v.strip().lower() in DEFAULTS:
                findings.append(f"{rel}: {where} is a default or guessable password")
            elif not v.startswith(HASH_PREFIXES):
                findings.append(f"{rel}: {where} stores a password in plaintext")
    return findings


@check("credentials.no-defaults", "No default, hard-coded or plaintext passwords",
       requirements=["C6", "UK1", "SB327-2", "PSTI-1"],
       remediation="replace default passwords with unique per-device credentials, store only "
                   "salted hashes (scrypt/argon2) or KEK-wrapped secrets")
def no_defaults(ctx: CheckContext) -> Outcome:
    """Scan configuration files in the state dir for weak or plaintext passwords."""
    findings = find_weak_credentials(ctx.live_state_dir)
    if findings:
        return failed(*scan.limit(findings))
    return passed("no default or plaintext password in the state dir's configuration files")
