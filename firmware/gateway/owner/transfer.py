"""Ownership transfer (R2-4): the old household loses every credential, token and secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.gateway.admin.db import AdminDB
from firmware.gateway.admin.settings import LockManifest
from firmware.gateway.owner.personal import PersonalStore

PEPPER = "admin-session-pepper"


def transfer_ownership(db: AdminDB, state_dir: Path, board: dict | None = None) -> dict[str, Any]:
    """Revoke every session and owner account, erase personal data, rotate local secrets.

    Returns a summary (no secret) for the event and the caller. The caller re-reads the
    session pepper afterwards.
    """
    from firmware.gateway.admin.auth import rotate_pepper

    owners = [a["name"] for a in db.accounts() if a["role"] == "owner"]
    for name in owners:
        db.delete_account(name)
    revoked = db.drop_sessions()
    windows = db.close_windows()
    erased = PersonalStore(state_dir, board).erase()
    rotate_pepper(state_dir, board)
    manifest = LockManifest(state_dir, board)
    manifest.rotate_key()
    manifest.write({n: s["value"] for n, s in db.settings().items() if s["locked"]})
    return {"owner_accounts_removed": len(owners), "sessions_revoked": revoked,
            "maintenance_windows_closed": windows, "personal_data": erased,
            "secrets_rotated": [PEPPER, "admin-settings-mac"]}
