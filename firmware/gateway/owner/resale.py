"""Resale reset (R2-9, C7, UK11): every trace of the household destroyed, the firmware kept.

Destroyed: settings, accounts, sessions, personal and collected data, logs (after an upload
attempt), credentials, identity and keys. Kept: the firmware slots, the boot selector and the
update agent's trust state (``update/``: TUF metadata, anti-rollback floors, history), so the
updated firmware survives. Every removed file is overwritten then unlinked; the device KEK goes
last, so whatever survived on flash (wear levelling) is crypto-erased.

Afterwards ``resale.json`` marks the gateway as resold: the composition root starts no device
or WAN service and the gateway stays unprovisioned until the OTA agent has installed the latest
firmware and called :func:`clear_marker`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common import kek as devicekey
from firmware.core.errors import PolicyError, StateError
from firmware.gateway.owner.shred import shred
from firmware.gateway.runtime.gateway import LOCK_FILE, Gateway, Service

MARKER = "resale.json"
MARKER_FORMAT = "mamori-resale/1"
KEEP_UPDATE_DROP = ("update/staging", "update/offline")
Uploader = Callable[[Path], dict[str, Any]]


def marker(state_dir: Path) -> dict[str, Any] | None:
    """The resale marker, or None when the gateway is not waiting after a resale reset."""
    path = Path(state_dir) / MARKER
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        # Unreadable counts as set: failing closed keeps the service disabled.
        return {"format": MARKER_FORMAT, "state": "resold", "damaged": True}
    return doc


def resale_pending(state_dir: Path) -> bool:
    """Whether the service must stay disabled (a resale reset awaits its update-to-latest)."""
    return marker(state_dir) is not None


def clear_marker(state_dir: Path, installed_version: str) -> dict[str, Any]:
    """Called by the OTA agent once an update to the latest release has committed."""
    doc = marker(state_dir)
    if doc is None:
        return {"cleared": False}
    (Path(state_dir) / MARKER).unlink()
    return {"cleared": True, "version": installed_version, "reset_at": doc.get("reset_at")}


def _keep(state_dir: Path, board: dict[str, Any]) -> list[Path]:
    root = state_dir.resolve()
    keep = [root / "update"]
    for s in board.get("storage", {}).get("slots", []):
        p = Path(s)
        keep.append((p if p.is_absolute() else root / p).resolve())
    return keep


def _firmware(state_dir: Path, board: dict[str, Any]) -> dict[str, Any]:
    try:
        from firmware.gateway.update import status

        st = status(state_dir, board)
        return {"version": st.get("version", ""), "slot": st.get("slot", "")}
    except Exception as exc:  # the OTA agent may be absent on this board
        return {"version": "", "error": type(exc).__name__}


def _lock(state_dir: Path) -> int:
    path = state_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateError("a gateway is running on %s" % state_dir,
                         "stop it first (the reset must not race the running gateway)")
    return fd


def _upload_logs(state_dir: Path, uploader: Uploader | None) -> dict[str, Any]:
    log_dir = state_dir / "accesslog"
    segments = sorted(log_dir.glob("seg-*.log")) if log_dir.is_dir() else []
    if not segments:
        return {"uploaded": False, "reason": "no access log to upload"}
    hook = uploader
    if hook is None:
        from firmware.gateway.accesslog import service as accesslog_service

        hook = getattr(accesslog_service, "upload_before_reset", None)
    if hook is None:
        return {"uploaded": False, "segments_destroyed": len(segments),
                "reason": "the access-log service offers no offline upload hook; "
                          "the log was destroyed without upload"}
    try:
        result = dict(hook(state_dir))
    except Exception as exc:
        return {"uploaded": False, "segments_destroyed": len(segments),
                "reason": "upload failed (%s); the log was destroyed without upload"
                          % type(exc).__name__}
    result.setdefault("uploaded", True)
    return result


def resale_reset(state_dir: Path, board: dict[str, Any], yes: bool = False,
                 uploader: Uploader | None = None,
                 clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """Destroy the household's state, keep the firmware, set the resale marker."""
    if not yes:
        raise PolicyError("a resale reset destroys every setting, credential, key and log",
                          "pass --yes to confirm")
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        raise StateError("no state directory at %s" % state_dir)
    root = state_dir.resolve()
    fd = _lock(state_dir)
    try:
        before = _firmware(state_dir, board)
        upload = _upload_logs(state_dir, uploader)
        keep = _keep(state_dir, board)
        kek = devicekey.kek_path(state_dir).resolve()
        lock = (state_dir / LOCK_FILE).resolve()
        removed = 0
        for dirpath, dirnames, filenames in os.walk(root, topdown=False):
            d = Path(dirpath)
            in_update = d == root / "update" or (root / "update") in d.parents
            for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
                p = d / name
                if p in (kek, lock):
                    continue
                if in_update and not any(p == root / k or (root / k) in p.parents
                                         for k in KEEP_UPDATE_DROP):
                    continue
                if any(p == k or k in p.parents for k in keep if k != root / "update"):
                    continue
                shred(p)
                removed += 1
            for name in dirnames:
                sub = d / name
                if sub.is_symlink() or any(sub == k or k in sub.parents or sub in k.parents
                                           for k in keep):
                    continue
                if sub == lock.parent:
                    continue
                with contextlib.suppress(OSError):
                    sub.rmdir()
        had_kek = shred(kek)
        with contextlib.suppress(OSError):
            kek.parent.rmdir()
        after = _firmware(state_dir, board)
        doc = {"format": MARKER_FORMAT, "state": "resold", "reset_at": clock(),
               "service": "disabled until an update to the latest firmware has succeeded",
               "firmware_before": before, "firmware_after": after, "files_destroyed": removed,
               "kek_destroyed": had_kek, "logs": upload,
               "kept": sorted(str(k.relative_to(root)) for k in keep if k.exists())}
        tmp = state_dir / (MARKER + ".tmp")
        tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
        os.replace(tmp, state_dir / MARKER)
        return doc
    finally:
        os.close(fd)


class ResaleHoldService(Service):
    """Runs instead of the device/WAN services while the resale marker is set."""

    name = "resale"

    def __init__(self, gw: Gateway) -> None:
        super().__init__(gw)
        self.marker = marker(gw.state_dir) or {}

    async def start(self) -> None:
        """Announce that the service stays disabled."""
        from firmware.core.events import Event

        self.gw.emit(Event("gateway.resale-hold", severity="notice", source="gateway",
                           action="hold", result="disabled",
                           reason="resale reset: waiting for an update to the latest firmware"))

    def status(self) -> dict[str, Any]:
        """The resale state for `mamori-gateway status`."""
        return {"resold": True, "service": "disabled", "reset_at": self.marker.get("reset_at"),
                "waiting_for": "update to the latest firmware (OTA agent clears resale.json)"}
