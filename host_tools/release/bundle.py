"""Build a firmware bundle (deterministic tar: manifest, SBOM, payload) for one board profile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.chunks import chunk_hashes, file_sha256
from firmware.core.errors import ConfigError
from firmware.core.update.version import parse_version
from host_tools.release.sbom import build_sbom

DEFAULT_CHUNK = 1024 * 1024
FORMAT = "mamori-bundle/1"
__all__ = ["DEFAULT_CHUNK", "FORMAT", "build_bundle", "chunk_hashes", "file_sha256"]


def _payload_files(src: Path) -> dict[str, Path]:
    if src.is_file():
        return {src.name: src}
    if not src.is_dir():
        raise ConfigError("payload path does not exist", str(src))
    out: dict[str, Path] = {}
    for p in sorted(src.rglob("*")):
        if p.is_symlink():
            raise ConfigError("symbolic links are not allowed in a bundle payload", str(p))
        if p.is_file():
            out[p.relative_to(src).as_posix()] = p
    if not out:
        raise ConfigError("payload directory is empty", str(src))
    return out


def components_for(board: Board, files: dict[str, Path]) -> list[str]:
    """Which parts the bundle covers; Linux boards with tryboot need OS and boot files too."""
    tops = {rel.split("/", 1)[0] for rel in files if "/" in rel}
    comps: list[str] = [c for c in ("app", "os", "boot") if c in tops]
    if board.storage.boot == "tryboot":
        missing = [c for c in ("app", "os", "boot") if c not in tops]
        if missing:
            raise ConfigError(
                "a %s bundle must cover the application, the OS and the boot files; missing %s"
                % (board.name, ", ".join(d + "/" for d in missing)), "PATH",
                hint="lay PATH out as app/, os/, boot/")
    return comps or ["app"]


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def build_bundle(src: Path, board: Board, version: str, out: Path, now: float,
                 health: str = "") -> dict[str, Any]:
    """Write the bundle to `out`; return its manifest (the SBOM is inside and returned too)."""
    parse_version(version)
    files = _payload_files(src)
    listing: dict[str, dict[str, Any]] = {rel: {"sha256": file_sha256(p), "size": p.stat().st_size,
                     "mode": 0o755 if os.access(p, os.X_OK) else 0o644}
               for rel, p in files.items()}
    if health and health not in listing:
        raise ConfigError("health check %r is not in the payload" % health, "--health-check")
    if not health and "app/healthcheck.py" in listing:
        health = "app/healthcheck.py"
    deps = None
    if "app/dependencies.json" in files:
        try:
            deps = json.loads(files["app/dependencies.json"].read_text())["wheels"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError("app/dependencies.json is unreadable: %s" % exc, str(src))
    sbom = build_sbom(board, version, listing, now, deps)
    sbom_bytes = json.dumps(sbom, indent=1, sort_keys=True).encode()
    manifest = {
        "format": FORMAT, "board": board.name, "version": version,
        "components": components_for(board, files), "files": listing, "health": health,
        "sbom_sha256": hashlib.sha256(sbom_bytes).hexdigest(),
    }
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
        _add_bytes(tar, "sbom.cdx.json", sbom_bytes)
        for rel, p in files.items():
            info = tarfile.TarInfo("payload/" + rel)
            info.size = listing[rel]["size"]
            info.mode = listing[rel]["mode"]
            with open(p, "rb") as f:
                tar.addfile(info, f)
    return {"manifest": manifest, "sbom": sbom, "sbom_bytes": sbom_bytes}
