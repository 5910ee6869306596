"""Helpers shared by the check modules: the live status file, the installed release, verdicts.

The leading underscore keeps :func:`firmware.gateway.selftest.checks.load_checks` from
treating this module as a check module.
"""

from __future__ import annotations

import json
from typing import Any

from firmware.core.errors import ConfigError
from firmware.gateway.runtime.gateway import STATUS_FILE
from firmware.gateway.selftest.context import CheckContext
from firmware.gateway.selftest.registry import Outcome, failed, not_applicable, passed
from firmware.gateway.update.blockslot import slot_store
from firmware.gateway.update.store import Paths, read_json

NOT_INSTALLED = "no update was ever installed on this gateway (factory image, no signed release " \
                "record to compare against)"


def live_status(ctx: CheckContext) -> dict[str, Any]:
    """The running gateway's ``run/status.json`` ({} when absent, unreadable or not an object)."""
    try:
        data = json.loads((ctx.live_state_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def verdict(problems: list[str], evidence: list[str], *on_pass: str) -> Outcome:
    """Failed (problems first, then the evidence) when there are problems, else passed."""
    if problems:
        return failed(*problems, *evidence)
    return passed(*evidence, *on_pass)


class Installed:
    """The running release as the update agent recorded it."""

    def __init__(self, ctx: CheckContext) -> None:
        self.board = ctx.board()
        self.paths = Paths(ctx.live_state_dir, self.board)
        selector = read_json(self.paths.selector, {"booted": "a"})
        self.slot = str(selector.get("booted") or selector.get("default") or "a")
        self.store = slot_store(self.paths, self.board)
        self.info: dict[str, Any] | None = self.store.info(self.slot)
        self.slot_dir = self.paths.slot(self.slot)

    @property
    def version(self) -> str:
        """Running version ('' when nothing was installed)."""
        return str(self.info.get("version", "")) if self.info else ""

    @property
    def target(self) -> dict[str, Any]:
        """The signed target the slot was written from (as recorded at install)."""
        return dict((self.info or {}).get("target") or {})


def installed_release(ctx: CheckContext, require_version: bool = True) -> Installed | Outcome:
    """The running release, or the not-applicable outcome: no A/B update mechanism on the
    board, or (``require_version``) no update ever installed."""
    try:
        inst = Installed(ctx)
    except ConfigError as exc:
        return not_applicable(f"no A/B update mechanism on this board: {exc}")
    if require_version and not inst.version:
        return not_applicable(NOT_INSTALLED)
    return inst
