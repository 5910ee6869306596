"""The gateway's policy files (``STATE_DIR/policy/``), each with its schema (CPython).

Every policy an installer may write is listed here: a file that is not, or a key, type or value
that does not fit, is refused by name with the nearest valid one (``firmware.common.policyfile``)
and the gateway fails closed for what that policy governs. ``check_all`` is what the gateway runs
at start (alerts) and what the self-test reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.common.policyfile import Field, load, unknown_files
from firmware.core.errors import ConfigError

DIR = "policy"
DEVICE_BINDING = "device-binding.json"

SCHEMAS: dict[str, dict[str, Field]] = {
    # New devices must present a one-time installation ticket (identity/binding.py).
    DEVICE_BINDING: {"require_ticket": Field(bool, default=False)},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    name: {k: f.default for k, f in fields.items()} for name, fields in SCHEMAS.items()}


def path(state_dir: Path, name: str) -> Path:
    """Where a policy file lives."""
    return Path(state_dir) / DIR / name


def read(state_dir: Path, name: str) -> dict[str, Any]:
    """A validated policy (its defaults when the file does not exist); ConfigError otherwise."""
    return load(path(state_dir, name), SCHEMAS[name], DEFAULTS[name])


def check_all(state_dir: Path) -> list[ConfigError]:
    """Every problem with the policy directory: unknown files, bad keys, types and values."""
    problems = unknown_files(Path(state_dir) / DIR, SCHEMAS)
    for name in SCHEMAS:
        try:
            read(state_dir, name)
        except ConfigError as exc:
            problems.append(exc)
    return problems
