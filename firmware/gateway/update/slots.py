"""Write a verified bundle into an inactive slot directory, and verify a slot's contents."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from firmware.core.errors import IntegrityError
from firmware.gateway.update.overlap import copy_hashed, hash_fd
from firmware.gateway.update.store import fsync_dir, write_json

SLOT_RECORD = ".mamori-slot.json"
MANIFEST_MAX = 4 * 1024 * 1024
BLOCK = 4 * 1024 * 1024
SYNC_EVERY = 64 * 1024 * 1024  # start writeback while copying, so the final fsync is short


def _safe_rel(name: str) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise IntegrityError("bundle member %r escapes the slot" % name)
    return p.as_posix()


def write_slot(bundle: Path, slot_dir: Path, target: dict[str, Any], board: str) -> dict[str, Any]:
    """Extract `bundle` (already chunk-verified) into slot_dir via a temp dir and a rename."""
    tmp = slot_dir.with_name(slot_dir.name + ".new")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    with open(bundle, "rb") as raw, tarfile.open(fileobj=raw, mode="r:") as tar:
        first = tar.next()
        if first is None or first.name != "manifest.json" or first.size > MANIFEST_MAX:
            raise IntegrityError("bundle does not start with its manifest")
        fobj = tar.extractfile(first)
        assert fobj is not None
        manifest = json.loads(fobj.read())
        if manifest.get("board") != board:
            raise IntegrityError("bundle is built for board %r, this gateway is %r" % (
                manifest.get("board"), board), "wrong-board image refused")
        if manifest.get("version") != target["version"]:
            raise IntegrityError("bundle version %r differs from its signed metadata %r" % (
                manifest.get("version"), target["version"]))
        files: dict[str, Any] = manifest.get("files", {})
        seen = set()
        while True:
            member = tar.next()
            if member is None:
                break
            name = _safe_rel(member.name)
            if name == "sbom.cdx.json":
                dest = tmp / name
            elif name.startswith("payload/"):
                rel = name[len("payload/"):]
                if rel not in files:
                    raise IntegrityError("bundle carries %r, not in its manifest" % rel)
                dest = tmp / "payload" / rel
                seen.add(rel)
            else:
                raise IntegrityError("unexpected bundle member %r" % name)
            if not member.isfile() or member.issparse():
                raise IntegrityError("bundle member %r is not a regular file" % name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                digest = copy_hashed(raw.fileno(), member.offset_data, member.size, out,
                                     BLOCK, SYNC_EVERY)
            finally:
                os.close(out)
            if name.startswith("payload/"):
                if digest != files[rel]["sha256"]:
                    raise IntegrityError("payload file %r does not match the manifest" % rel)
                os.chmod(dest, 0o755 if files[rel].get("mode") == 0o755 else 0o644)
        missing = set(files) - seen
        if missing:
            raise IntegrityError("bundle lacks %d manifest file(s)" % len(missing))
    (tmp / "manifest.json").write_text(json.dumps(manifest, sort_keys=True))
    record = {"version": target["version"], "board": board, "target": target}
    write_json(tmp / SLOT_RECORD, record)
    fsync_dir(tmp)
    if slot_dir.exists():
        shutil.rmtree(slot_dir)
    os.replace(tmp, slot_dir)
    fsync_dir(slot_dir.parent)
    return record


def slot_info(slot_dir: Path) -> dict[str, Any] | None:
    """The slot's record (version, signed target info), or None for an empty slot."""
    try:
        data: dict[str, Any] = json.loads((slot_dir / SLOT_RECORD).read_text())
        return data
    except (OSError, ValueError):
        return None


def verify_slot(slot_dir: Path) -> dict[str, Any]:
    """Check every payload file against the slot's manifest; return the slot record."""
    info = slot_info(slot_dir)
    if info is None:
        raise IntegrityError("slot %s holds no complete image" % slot_dir.name)
    try:
        manifest = json.loads((slot_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        raise IntegrityError("slot %s has no readable manifest" % slot_dir.name)
    if manifest.get("version") != info.get("version"):
        raise IntegrityError("slot %s manifest and record disagree" % slot_dir.name)
    for rel, meta in manifest.get("files", {}).items():
        p = slot_dir / "payload" / rel
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            raise IntegrityError("slot %s lacks %s" % (slot_dir.name, rel))
        try:
            digest = hash_fd(fd, BLOCK)
        except OSError as exc:
            raise IntegrityError("slot %s cannot read %s: %s" % (slot_dir.name, rel, exc.strerror))
        finally:
            os.close(fd)
        if digest != meta["sha256"]:
            raise IntegrityError("slot %s file %s is corrupted" % (slot_dir.name, rel))
    return info


def default_health(slot_dir: Path) -> tuple[bool, str]:
    """`sim` health check: slot intact, then the image's own health script (if any) exits 0."""
    try:
        verify_slot(slot_dir)
    except IntegrityError as exc:
        return False, str(exc)
    manifest = json.loads((slot_dir / "manifest.json").read_text())
    script = manifest.get("health") or ""
    if not script:
        return True, "image intact"
    try:
        proc = subprocess.run([sys.executable, str(slot_dir / "payload" / script)],
                              cwd=slot_dir / "payload", capture_output=True, text=True,
                              timeout=60)
    except subprocess.TimeoutExpired:
        return False, "health check %s timed out" % script
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1][:200]
        return False, "health check %s exited %d %s" % (script, proc.returncode, last)
    return True, "health check passed"
