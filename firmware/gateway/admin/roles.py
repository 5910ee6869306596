"""Roles and their permissions (least privilege; anything not listed is denied)."""

from __future__ import annotations

INSTALLER = "installer"
MAINTENANCE = "maintenance"
OWNER = "owner"
ROLES = (INSTALLER, MAINTENANCE, OWNER)

# The one place that grants anything: role -> permissions. Default deny.
PERMISSIONS: dict[str, frozenset[str]] = {
    INSTALLER: frozenset({
        "session.self", "status.read", "openapi.read", "settings.read", "settings.write",
        "settings.write-locked", "settings.lock", "accounts.read", "accounts.manage",
        "maintenance.grant", "diagnostics.read", "diagnostics.create", "ownership.transfer",
        "commissioning.run",
    }),
    MAINTENANCE: frozenset({
        "session.self", "status.read", "openapi.read", "settings.read", "diagnostics.read",
        "diagnostics.create",
    }),
    OWNER: frozenset({
        "session.self", "status.read", "openapi.read", "settings.read", "settings.write",
        "maintenance.grant", "personal.read", "personal.write", "personal.delete",
        "ownership.transfer",
    }),
}


def allowed(role: str, permission: str) -> bool:
    """Whether a role holds a permission (unknown roles and permissions: no)."""
    return permission in PERMISSIONS.get(role, frozenset())
