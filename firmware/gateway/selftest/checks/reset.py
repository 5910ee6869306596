"""Resale reset on a scratch copy: user data and keys gone, firmware kept (C7, UK11, R2-5, R2-9).

The real ``owner/resale.py: resale_reset`` runs on the check's scratch copy of the state dir
after canary personal data (through the encrypted personal store) and a canary settings file
were planted there, and a marker file was planted in the booted firmware slot. Logs are never
handed off from here: the scratch run discards its copy of the log (with that reason).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from functools import partial
from pathlib import Path
from typing import Any

from firmware.common import kek as devicekey
from firmware.common.boardprofile import Board
from firmware.core.errors import MamoriError
from firmware.gateway.admin.personal import DATA_FILE, PersonalStore
from firmware.gateway.identity.keystore import STORE_DIR
from firmware.gateway.owner import resale
from firmware.gateway.selftest import scan
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, check, failed, inconclusive, passed
from firmware.gateway.update import status as update_status

KEPT_UPDATE_FILES = ("update/floors.json", "update/history.json", "update/boot.json",
                     "update/tuf/root.json")
SLOT_MARKER = ".selftest-firmware"


def tree_digest(path: Path) -> str:
    """Names and contents of a directory tree (or 'absent')."""
    if not path.exists():
        return "absent"
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        if f.is_file() and not f.is_symlink():
            h.update(f.read_bytes())
    return h.hexdigest()


def _slot_dirs(root: Path, board: Board) -> list[Path]:
    out = []
    for s in board.storage.slots:
        p = Path(s)
        if not p.is_absolute():
            out.append(root / p)
    return out


def _no_handoff(_state: Path, _board: Board) -> dict[str, Any]:
    return {"handoff": "discard", "delivered": False,
            "reason": "self-test scratch copy: its log is never handed off"}


@check("reset.keeps-firmware", "Resale reset erases user data and keys and keeps the firmware",
       requirements=["C7", "UK11", "R2-5", "R2-9"],
       remediation="fix firmware/gateway/owner/resale.py: every file outside update/ and the "
                   "firmware slots must be shredded, the device KEK last, and resale.json set")
def keeps_firmware(ctx: CheckContext) -> Outcome:
    """Plant canaries in a scratch copy, run the resale reset there, inspect what is left."""
    board = ctx.board()
    root = ctx.scratch()
    canary = "selftest-canary-" + secrets.token_hex(8)
    try:
        PersonalStore(root, board).write({"name": canary, "note": "self-test canary"})
    except MamoriError as exc:
        return inconclusive(f"cannot write canary personal data into the scratch copy: {exc}")
    settings = root / "settings" / "selftest-canary.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({"owner_email": canary + "@example.invalid"}))
    slots = _slot_dirs(root, board)
    if slots:
        slots[0].mkdir(parents=True, exist_ok=True)
        (slots[0] / SLOT_MARKER).write_text(canary)  # stands for installed firmware
    before = {str(s.relative_to(root)): tree_digest(s) for s in slots}
    update_before = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
                     for rel in KEPT_UPDATE_FILES if (root / rel).is_file()}
    keys_before = sorted(p.name for p in (root / STORE_DIR).glob("*")) \
        if (root / STORE_DIR).is_dir() else []
    try:
        doc = resale.resale_reset(root, board, _no_handoff, yes=True,
                                  firmware=partial(update_status, root, board))
    except MamoriError as exc:
        return failed(f"the resale reset refused to run on the scratch copy: {exc}")
    problems: list[str] = []
    leftovers = []
    for p, rel, st in scan.regular_files(root):
        data = scan.read_limited(p, st)
        if data is not None and canary.encode() in data and not rel.startswith(
                tuple(str(s.relative_to(root)) + "/" for s in slots)):
            leftovers.append(rel)
    if leftovers:
        problems.append("canary user data survived the reset in: " + ", ".join(leftovers[:10]))
    for rel in (DATA_FILE, str(settings.relative_to(root))):
        if (root / rel).exists():
            problems.append(f"{rel} still exists after the reset")
    left_keys = sorted(p.name for p in (root / STORE_DIR).glob("*")) \
        if (root / STORE_DIR).is_dir() else []
    if left_keys:
        problems.append(f"{len(left_keys)} key-store entr(y/ies) survived: "
                        + ", ".join(left_keys[:10]))
    if devicekey.kek_path(root).exists():
        problems.append("the device KEK survived the reset (no crypto-erase)")
    if (root / "identity").exists() and any((root / "identity").iterdir()):
        problems.append("identity/ (certificates, ACL) survived the reset")
    for rel, digest in before.items():
        after = tree_digest(root / rel)
        if after != digest:
            problems.append(f"firmware slot {rel} changed or was destroyed by the reset")
    for rel, digest in update_before.items():
        p = root / rel
        if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest:
            problems.append(f"{rel} (update trust state) was not kept")
    mark = resale.marker(root)
    if mark is None or mark.get("state") != "resold":
        problems.append("resale.json was not set: the service would start for the next user "
                        "without the update-to-latest")
    evidence = [f"reset destroyed {doc.get('files_destroyed')} file(s) of the scratch copy, "
                f"KEK destroyed: {doc.get('kek_destroyed')}",
                f"key store before: {len(keys_before)} entr(y/ies); after: {len(left_keys)}",
                "kept: " + (", ".join(doc.get("kept", [])) or "nothing"),
                f"firmware before/after: {doc.get('firmware_before')} / "
                f"{doc.get('firmware_after')}"]
    if problems:
        return failed(*problems, *evidence)
    return passed("canary personal data and settings erased; keys and KEK gone; firmware "
                  f"slots ({', '.join(before) or 'none on this board'}) and update trust state "
                  "unchanged; resale marker set", *evidence)
