"""Where the admin API keeps diagnostic snapshots (the ownership transfer removes them)."""

from __future__ import annotations

from pathlib import Path

DIAG_DIR = "admin/diagnostics"
MAX_DIAG = 64 * 1024  # bytes of one snapshot served back


def snapshot_dir(state_dir: Path) -> Path:
    """The snapshot folder (created private on first use), resolved."""
    d = Path(state_dir) / DIAG_DIR
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d.resolve()
