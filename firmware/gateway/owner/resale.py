"""Resale reset (R2-9, C7, UK11): every trace of the household destroyed, the firmware kept.

A crash-safe state machine whose state is ``resale.json`` (written atomically and synced):

0. hand-off (changes nothing else), handed in by the caller: the access log is sealed in a
   final ``reset`` checkpoint and delivered to the platform (WAN) or to an operator's folder
   (``firmware/gateway/cli/loghandoff.py``); if that fails the reset does not start.
1. ``marked``: the marker exists. From here on every start of the gateway finishes the reset
   before anything else and then holds: no device, LAN, admin or WAN service.
2. ``kek``: the device key-encryption key is destroyed first: everything wrapped by it (the
   key store, the personal data key, the admin and outbox field keys, the log keys) is
   unreadable from this instant (crypto-erase).
3. ``personal``: the personal-data stores (``owner.stores.PERSONAL``) are overwritten and
   unlinked.
4. ``files``: everything else but the firmware slots and ``update/`` likewise.
5. ``done``: the marker says ``resold``; only an update to the latest firmware (OTA agent,
   ``runtime.resalemarker.clear_marker``) lets the service start again.

Every step is idempotent; an interrupted reset is finished by the next start
(:func:`finish_interrupted`) or by running the reset again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common import kek as devicekey
from firmware.common.accesslog.files import LOG_DIR, list_segments
from firmware.common.boardprofile import Board
from firmware.common.fsutil import atomic_write
from firmware.common.shred import shred
from firmware.core.errors import PolicyError, StateError
from firmware.gateway.identity.keystore import kek_backend
from firmware.gateway.owner.stores import PERSONAL
from firmware.gateway.runtime.gateway import LOCK_FILE, Gateway, Service
from firmware.gateway.runtime.interfaces import FirmwareStatus
from firmware.gateway.runtime.resalemarker import MARKER, MARKER_FORMAT, RESETTING, RESOLD, marker

KEEP = "update/"
KEEP_UPDATE_DROP = ("update/staging", "update/offline")
STEPS = ("marked", "kek", "personal", "files", "done")
# Step 0, handed in by the caller (the `reset` verb: firmware/gateway/cli/loghandoff.py):
# hand the access log to the platform, or raise MamoriError and the reset does not start.
HandOff = Callable[[Path, Board], dict[str, Any]]


def trace(point: str) -> None:
    """Power-cut test seam: announce POINT on stderr when MAMORI_RESET_TRACE is set, and stop
    there (SIGSTOP, to be killed) when it equals MAMORI_RESET_STOP."""
    if os.environ.get("MAMORI_RESET_TRACE"):
        sys.stderr.write("mamori-reset-trace %s\n" % point)
        sys.stderr.flush()
        if os.environ.get("MAMORI_RESET_STOP") == point:
            os.kill(os.getpid(), signal.SIGSTOP)


def _save(state_dir: Path, doc: dict[str, Any]) -> None:
    atomic_write(Path(state_dir) / MARKER, json.dumps(doc, indent=2, sort_keys=True).encode(),
                 sync_dir=True)


def _keep(state_dir: Path, board: Board) -> list[Path]:
    root = state_dir.resolve()
    keep = [root / KEEP.rstrip("/")]
    for s in board.storage.slots:
        p = Path(s)
        keep.append((p if p.is_absolute() else root / p).resolve())
    return keep


def _firmware(firmware: FirmwareStatus | None) -> dict[str, Any]:
    """The firmware the reset keeps, as the update room reports it (handed in by the caller)."""
    if firmware is None:
        return {"version": "", "error": "no firmware status was handed in"}
    try:
        st = firmware()
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


def _walk(root: Path, keep: list[Path], spare: set[Path]) -> int:
    """Shred every file under root but the kept trees and the spared files; remove folders."""
    removed = 0
    update = root / KEEP.rstrip("/")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        d = Path(dirpath)
        in_update = d == update or update in d.parents
        for name in filenames + [n for n in dirnames if (d / n).is_symlink()]:
            p = d / name
            if p in spare:
                continue
            if in_update and not any(p == root / k or (root / k) in p.parents
                                     for k in KEEP_UPDATE_DROP):
                continue
            if any(p == k or k in p.parents for k in keep if k != update):
                continue
            trace("shred")
            shred(p)
            removed += 1
        for name in dirnames:
            sub = d / name
            if sub.is_symlink() or any(sub == k or k in sub.parents or sub in k.parents
                                       for k in keep) or any(sub in s.parents for s in spare):
                continue
            with contextlib.suppress(OSError):
                sub.rmdir()
    return removed


def _personal(root: Path, keep: list[Path]) -> int:
    """Shred the personal-data stores first, in the registry's order."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        dirnames[:] = [n for n in dirnames if d / n not in keep]
        files += [d / n for n in filenames]
    removed = 0
    for store in PERSONAL:
        for p in sorted(files):
            if store.matches(str(p.relative_to(root))) and p.exists():
                trace("shred")
                shred(p)
                removed += 1
    return removed


def _destroy_kek(state_dir: Path, board: Board) -> bool:
    backend = kek_backend(state_dir, board)
    destroy = getattr(backend, "destroy", None)
    if destroy is None:
        raise StateError("the board's key-encryption key backend cannot destroy its key",
                         "install a secure-element driver that implements destroy()")
    had = bool(destroy())
    return devicekey.destroy_kek(state_dir) or had  # a file KEK a former backend left behind


def _finish(state_dir: Path, board: Board, doc: dict[str, Any],
            clock: Callable[[], float], firmware: FirmwareStatus | None) -> dict[str, Any]:
    """Run the steps after the last one the marker records (each idempotent)."""
    root = state_dir.resolve()
    keep = _keep(state_dir, board)
    spare = {(state_dir / LOCK_FILE).resolve(), root / MARKER, root / ("." + MARKER + ".tmp")}
    done = STEPS.index(doc.get("step", "marked")) if doc.get("step") in STEPS else 0
    for step in STEPS[done + 1:]:
        if step == "kek":
            doc["kek_destroyed"] = _destroy_kek(state_dir, board) or bool(
                doc.get("kek_destroyed"))
        elif step == "personal":
            doc["files_destroyed"] = doc.get("files_destroyed", 0) + _personal(root, keep)
        elif step == "files":
            doc["files_destroyed"] = doc.get("files_destroyed", 0) + _walk(root, keep, spare)
        else:
            doc.update(state=RESOLD, reset_at=clock(), firmware_after=_firmware(firmware),
                       kept=sorted(str(k.relative_to(root)) for k in keep if k.exists()),
                       service="disabled until an update to the latest firmware has succeeded")
        doc["step"] = step
        doc.pop("damaged", None)
        _save(state_dir, doc)
        trace(step)
    return doc


def no_handoff(state_dir: Path, _board: Board) -> dict[str, Any]:
    """Step 0 when the caller brings none: fine without an access log, else refused."""
    if list_segments(Path(state_dir) / LOG_DIR):
        raise StateError("the access log must be handed to the platform before a resale reset",
                         "use `mamori-gateway reset --resale` (it hands the log off first)")
    return {"handoff": "none", "delivered": False, "reason": "no access log"}


def resale_reset(state_dir: Path, board: Board, handoff: HandOff = no_handoff,
                 yes: bool = False, clock: Callable[[], float] = time.time,
                 firmware: FirmwareStatus | None = None) -> dict[str, Any]:
    """Hand the log off, then destroy the household's state and keep the firmware (or finish
    an interrupted reset); the final marker document. ``firmware`` reports the firmware kept
    (the update room's status, handed in by the caller)."""
    if not yes:
        raise PolicyError("a resale reset destroys every setting, credential, key and log",
                          "pass --yes to confirm")
    state_dir = Path(state_dir)
    if not state_dir.is_dir():
        raise StateError("no state directory at %s" % state_dir)
    fd = _lock(state_dir)
    try:
        doc = marker(state_dir)
        if doc is not None and doc.get("state") == RESETTING:
            doc["resumed"] = int(doc.get("resumed", 0)) + 1
            return _finish(state_dir, board, doc, clock, firmware)
        if doc is not None:  # resold already: the log since then holds no household data
            logs = {"handoff": "none", "delivered": False,
                    "reason": "already resold: the log since then holds no household data"}
        else:
            logs = handoff(state_dir, board)
        trace("handoff")
        doc = {"format": MARKER_FORMAT, "state": RESETTING, "step": "marked",
               "started_at": clock(), "firmware_before": _firmware(firmware),
               "logs": logs, "files_destroyed": 0, "kek_destroyed": False}
        _save(state_dir, doc)
        trace("marked")
        return _finish(state_dir, board, doc, clock, firmware)
    finally:
        os.close(fd)


def finish_interrupted(state_dir: Path, board: Board,
                       firmware: FirmwareStatus | None = None) -> dict[str, Any] | None:
    """At start: finish a reset a power cut interrupted (None when there is none)."""
    doc = marker(state_dir)
    if doc is None or doc.get("state") == RESOLD:
        return None
    fd = _lock(Path(state_dir))
    try:
        doc = marker(state_dir) or doc
        doc["resumed"] = int(doc.get("resumed", 0)) + 1
        return _finish(Path(state_dir), board, doc, time.time, firmware)
    finally:
        os.close(fd)


class ResaleHoldService(Service):
    """Runs instead of the device/WAN services while the resale marker is set."""

    name = "resale"

    def __init__(self, gw: Gateway, finished: dict[str, Any] | None = None) -> None:
        super().__init__(gw)
        self.marker = marker(gw.state_dir) or {}
        self.finished = finished

    async def start(self) -> None:
        """Announce that the service stays disabled (and that an interrupted reset ended)."""
        from firmware.core.events import Event

        if self.finished is not None:
            self.gw.emit(Event("gateway.resale-resumed", severity="warning", source="gateway",
                               action="reset", result="finished",
                               reason="a resale reset interrupted by a power cut was finished"))
        self.gw.emit(Event("gateway.resale-hold", severity="notice", source="gateway",
                           action="hold", result="disabled",
                           reason="resale reset: waiting for an update to the latest firmware"))

    def status(self) -> dict[str, Any]:
        """The resale state for `mamori-gateway status`."""
        return {"resold": True, "service": "disabled", "reset_at": self.marker.get("reset_at"),
                "waiting_for": "update to the latest firmware (OTA agent clears resale.json)"}
