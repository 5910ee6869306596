"""A CycloneDX-style JSON SBOM for a firmware bundle."""

from __future__ import annotations

import importlib.metadata
import time
import uuid
from typing import Any

from firmware.common.boardprofile import Board
from host_tools.release import wheels as lock_mod

RUNTIME_PACKAGES = ("cryptography", "paho-mqtt", "pyserial", "bleak", "zigpy", "tuf",
                    "securesystemslib", "urllib3")


def _pkg_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_sbom(board: Board, version: str, files: dict[str, dict], now: float,
               wheels: list[dict] | None = None) -> dict[str, Any]:
    """SBOM listing the firmware, every payload file (with SHA-256) and runtime dependencies.

    WHEELS (the payload's dependencies.json) are the exact wheels the slot carries; without
    them a Linux board's lock names them, and a board without one (sim) the host's versions.
    """
    components: list[dict[str, Any]] = []
    for rel in sorted(files):
        components.append({
            "type": "file", "name": rel, "bom-ref": "file:" + rel,
            "hashes": [{"alg": "SHA-256", "content": files[rel]["sha256"]}],
        })
    if wheels is None and board.base_os_requires is not None:
        wheels = lock_mod.describe(lock_mod.lock_for(board))
    if wheels is not None:
        for w in wheels:
            components.append({
                "type": "library", "name": w["name"], "version": w["version"],
                "purl": "pkg:pypi/%s@%s" % (w["name"], w["version"]),
                "bom-ref": "pkg:pypi/" + w["name"],
                "hashes": [{"alg": "SHA-256", "content": w["sha256"]}],
            })
    elif board.runtime == "cpython":
        for pkg in RUNTIME_PACKAGES:
            v = _pkg_version(pkg)
            components.append({
                "type": "library", "name": pkg, "version": v,
                "purl": "pkg:pypi/%s@%s" % (pkg, v), "bom-ref": "pkg:pypi/" + pkg,
            })
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": "urn:uuid:" + str(uuid.uuid4()),
        "version": 1,
        "metadata": {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "component": {"type": "firmware", "name": "mamori-" + board.name,
                          "version": version, "bom-ref": "mamori-firmware"},
            "properties": [{"name": "mamori:board", "value": board.name},
                           {"name": "mamori:runtime", "value": board.runtime}],
        },
        "components": components,
    }


def release_sbom(board: str) -> dict[str, Any]:
    """The SBOM the release tool would ship for this board (runtime packages, no payload)."""
    from firmware.common.boards import load_board
    from firmware.common.version import software_version

    return build_sbom(load_board(board), software_version(), {}, time.time())
