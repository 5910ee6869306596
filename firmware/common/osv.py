"""Known-vulnerable components: a CycloneDX SBOM checked against OSV-format advisories.

OSV schema (https://ossf.github.io/osv-schema/): ``affected[].package{ecosystem,name}``,
``affected[].ranges[]{type,events[{introduced}|{fixed}|{last_affected}|{limit}]}`` and
``affected[].versions[]``. Only ECOSYSTEM and SEMVER ranges are evaluated (GIT ranges need
commit history; their explicit ``versions`` list still applies).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from firmware.core import strictjson
from firmware.core.errors import ConfigError, ProtocolError

MAX_FILE = 64 * 1024 * 1024


def _load_json(path: Path, what: str) -> Any:
    try:
        if Path(path).stat().st_size > MAX_FILE:
            raise ConfigError(f"{what} {path} is too large")
        return strictjson.loads(Path(path).read_bytes(), what, max_bytes=MAX_FILE)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {type(exc).__name__}",
                          hint="a JSON file") from None
    except ProtocolError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.message}", hint="a JSON file")


def normalise(name: str) -> str:
    """PEP 503 name normalisation (PyPI names compare this way)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_advisories(path: Path) -> list[dict[str, Any]]:
    """OSV advisories from one file: a single advisory, a list, or ``{"vulns": [...]}``."""
    data = _load_json(path, "advisory file")
    if isinstance(data, dict) and "vulns" in data:
        data = data["vulns"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(v, dict) and "id" in v for v in data):
        raise ConfigError(f"{path} is not OSV JSON", hint="advisories need an 'id' and 'affected'")
    return [v for v in data if not v.get("withdrawn")]


def load_sbom(path: Path) -> dict[str, Any]:
    """A CycloneDX JSON SBOM."""
    data = _load_json(path, "SBOM")
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise ConfigError(f"{path} is not a CycloneDX JSON SBOM")
    return data


def components(sbom: dict[str, Any]) -> list[dict[str, str]]:
    """(ecosystem, name, version) of every versioned library component."""
    out = []
    for c in sbom.get("components") or []:
        if not isinstance(c, dict) or not c.get("version"):
            continue
        purl = str(c.get("purl", ""))
        eco = "PyPI" if purl.startswith("pkg:pypi/") else ""
        if purl.startswith("pkg:npm/"):
            eco = "npm"
        out.append({"ecosystem": eco, "name": str(c.get("name", "")),
                    "version": str(c["version"]), "ref": str(c.get("bom-ref", purl))})
    return out


def _parse(v: str) -> Version | None:
    try:
        return Version(v)
    except InvalidVersion:
        return None


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    # Walk the events in version order: introduced opens an interval, fixed/limit close it
    # (exclusive), last_affected closes it (inclusive).
    def key(e: dict[str, str]) -> Version:
        raw = next(iter(e.values()))
        return Version("0") if raw == "0" else (_parse(raw) or Version("0"))

    ordered = sorted((e for e in events if isinstance(e, dict) and len(e) == 1), key=key)
    affected = False
    for e in ordered:
        kind, raw = next(iter(e.items()))
        bound = Version("0") if raw == "0" else _parse(raw)
        if bound is None:
            continue
        if kind == "introduced" and version >= bound:
            affected = True
        elif (kind in ("fixed", "limit") and version >= bound
              or kind == "last_affected" and version > bound):
            affected = False
    return affected


def is_affected(adv: dict[str, Any], ecosystem: str, name: str, version: str) -> bool:
    """Whether one advisory covers this package version."""
    parsed = _parse(version)
    for aff in adv.get("affected") or []:
        pkg = aff.get("package") or {}
        if str(pkg.get("ecosystem", "")).lower() != ecosystem.lower():
            continue
        if normalise(str(pkg.get("name", ""))) != normalise(name):
            continue
        if version in (aff.get("versions") or []):
            return True
        if parsed is None:
            continue
        for rng in aff.get("ranges") or []:
            if rng.get("type") in ("ECOSYSTEM", "SEMVER") and _in_range(parsed,
                                                                          rng.get("events", [])):
                return True
    return False


def fixed_versions(adv: dict[str, Any], name: str) -> list[str]:
    """The fixed versions an advisory names for a package (the remediation)."""
    out = []
    for aff in adv.get("affected") or []:
        if normalise(str((aff.get("package") or {}).get("name", ""))) != normalise(name):
            continue
        for rng in aff.get("ranges") or []:
            out += [e["fixed"] for e in rng.get("events", []) if "fixed" in e]
    return out


def match(sbom: dict[str, Any], advisories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (component, advisory) pair where the component's version is affected."""
    hits = []
    for comp in components(sbom):
        for adv in advisories:
            if comp["ecosystem"] and is_affected(adv, comp["ecosystem"], comp["name"],
                                                 comp["version"]):
                hits.append({"component": comp, "id": adv["id"],
                             "aliases": list(adv.get("aliases") or []),
                             "summary": str(adv.get("summary", ""))[:200],
                             "fixed": fixed_versions(adv, comp["name"])})
    return hits
