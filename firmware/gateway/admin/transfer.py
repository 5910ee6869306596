"""Ownership transfer (R2-4): the old household loses every credential, token and secret, and
nothing of it stays on the gateway (the personal stores of ``owner.stores``). Served by the
admin API (``resources/owner.py``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.shred import shred
from firmware.gateway.admin.auth import PEPPER, rotate_pepper
from firmware.gateway.admin.db import AdminDB
from firmware.gateway.admin.personal import PersonalStore
from firmware.gateway.admin.settings import SCHEMA, LockManifest
from firmware.gateway.admin.snapshots import DIAG_DIR

FORMER = "previous owner"


def _old_household(db: AdminDB) -> tuple[list[str], list[str]]:
    """(owner accounts, maintenance accounts they made or that carry an owner's name)."""
    accounts = db.accounts()
    owners = [a["name"] for a in accounts if a["role"] == "owner"]
    names = [o.casefold() for o in owners]
    maint = [a["name"] for a in accounts if a["role"] == "maintenance" and (
        a["created_by"] in owners or any(n in a["name"].casefold() for n in names))]
    return owners, maint


def _forget(db: AdminDB, owners: list[str], now: float) -> dict[str, int]:
    """Rows that still name an old owner: windows they opened, settings they set, accounts
    they created."""
    windows = [w for w in db.windows() if w["opened_by"] in owners]
    for w in windows:
        db.delete_window(int(w["id"]))
    settings = 0
    for name, st in db.settings().items():
        if st["updated_by"] in owners and not st["locked"] and name in SCHEMA:
            db.put_setting(name, SCHEMA[name]["default"], False, now, "ownership-transfer")
            settings += 1
    for a in db.accounts():
        if a["created_by"] in owners:
            db.set_created_by(a["name"], FORMER)
    return {"windows_forgotten": len(windows), "settings_reset": settings}


def transfer_ownership(db: AdminDB, state_dir: Path, board: Board | None = None,
                       now: float | None = None) -> dict[str, Any]:
    """Revoke the old household, erase its data and traces, rotate local secrets.

    Returns a summary (no secret, no name) for the event and the caller. The caller re-reads
    the session pepper afterwards.
    """
    now = time.time() if now is None else now
    owners, maint = _old_household(db)
    for name in owners + maint:
        db.delete_account(name)
    revoked = db.drop_sessions()
    windows = db.close_windows()
    forgot = _forget(db, owners, now)
    throttle = db.clear_throttles()
    diag = Path(state_dir) / DIAG_DIR
    snapshots = [p for p in diag.iterdir() if p.is_file()] if diag.is_dir() else []
    for p in snapshots:
        shred(p)
    erased = PersonalStore(state_dir, board).erase()
    rotate_pepper(state_dir, board)
    manifest = LockManifest(state_dir, board)
    manifest.rotate_key()
    manifest.write({n: s["value"] for n, s in db.settings().items() if s["locked"]})
    # Last: what the journal or freed blocks kept of the old rows is sealed under a key that
    # no longer exists.
    db.rekey()
    return {"owner_accounts_removed": len(owners), "maintenance_accounts_removed": len(maint),
            "sessions_revoked": revoked, "maintenance_windows_closed": windows,
            "throttle_records_cleared": throttle, "diagnostics_removed": len(snapshots),
            **forgot, "personal_data": erased,
            "secrets_rotated": [PEPPER, "admin-settings-mac", "admin-db-fields"]}
