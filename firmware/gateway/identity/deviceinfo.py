"""Device information a user, installer or regulator may read (UK2 / PSTI-2 / PSTI-3 / R3-8).

Lives in ``STATE_DIR/deviceinfo.json`` (not secret, 0644): who makes it, which board and service
level it was installed for, where to report vulnerabilities, and until when it gets security
updates (PSTI-3's published minimum support period).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from firmware.common.policyfile import nearest
from firmware.core.errors import ConfigError

FILE = "deviceinfo.json"
# Project defaults (the release process may override them per product).
DEFAULT_SECURITY_CONTACT = "mailto:security@mamori.example"
DEFAULT_DISCLOSURE_URL = "https://mamori.example/security/disclosure"
DEFAULT_SUPPORT_YEARS = 5
REQUIRED = ("manufacturer", "model", "security_contact", "disclosure_url", "support_period_end")
KEYS = REQUIRED + ("board", "service_level")
WARN_DAYS = 180


def path(state_dir: Path) -> Path:
    """Where the device information lives."""
    return Path(state_dir) / FILE


def default_info(board: str, level: int, today: dt.date | None = None) -> dict[str, Any]:
    """Device information for a fresh installation with the project's defaults."""
    start = today or dt.date.today()
    end = start.replace(year=start.year + DEFAULT_SUPPORT_YEARS)
    return {
        "manufacturer": "Mamori project",
        "model": "mamori-gateway",
        "board": board,
        "service_level": level,
        "security_contact": DEFAULT_SECURITY_CONTACT,
        "disclosure_url": DEFAULT_DISCLOSURE_URL,
        "support_period_end": end.isoformat(),
    }


def validate(info: Any, source: str = FILE) -> dict[str, Any]:
    """Check fields and formats; ConfigError names the field."""
    if not isinstance(info, dict):
        raise ConfigError("must be a JSON object", source)
    for key in info:
        if key not in KEYS:  # a misspelt field would silently leave a published one out
            raise ConfigError("unknown key '%s'" % key, source, str(key),
                              hint=nearest(str(key), KEYS))
    for f in REQUIRED:
        if not isinstance(info.get(f), str) or not info[f].strip():
            raise ConfigError("is missing or empty", source, f)
    contact = info["security_contact"]
    if not (contact.startswith(("mailto:", "https://")) or "@" in contact):
        raise ConfigError("must be an e-mail address, mailto: or https: URL", source,
                          "security_contact")
    if not info["disclosure_url"].startswith("https://"):
        raise ConfigError("must be an https:// URL", source, "disclosure_url")
    support_end(info, source)
    level = info.get("service_level")
    if level is not None and level not in (2, 3):
        raise ConfigError("must be 2 or 3", source, "service_level")
    return info


def support_end(info: dict[str, Any], source: str = FILE) -> dt.date:
    """The last day of the published security-update support period."""
    try:
        return dt.date.fromisoformat(str(info.get("support_period_end")))
    except ValueError:
        raise ConfigError("must be an ISO date (YYYY-MM-DD)", source, "support_period_end")


def support_status(info: dict[str, Any], today: dt.date) -> tuple[str, int]:
    """("ok" | "ending" | "ended", days left) for the support period."""
    days = (support_end(info) - today).days
    if days < 0:
        return "ended", days
    if days <= WARN_DAYS:
        return "ending", days
    return "ok", days


def load(state_dir: Path) -> dict[str, Any]:
    """Read and validate the device information."""
    p = path(state_dir)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no device information", str(p),
                          hint="the installation writes it "
                          "(see firmware/gateway/identity/deviceinfo.py)")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read device information: {exc}", str(p))
    return validate(data, str(p))


def save(state_dir: Path, info: dict[str, Any]) -> Path:
    """Validate and write the device information atomically (0644: it is public)."""
    validate(info)
    p = path(state_dir)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return p
