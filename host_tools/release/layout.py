"""The release payload layout each board takes, checked at `mamori release publish`.

A payload directory holds up to three components, each a directory:

  app/   the application: what the A/B slot runs (on boards the flash tools lay out, it holds
         the ``firmware/`` package)
  os/    the root filesystem overlay (Raspberry Pi class boards: written to the slot's root)
  boot/  the boot partition files (Raspberry Pi class boards: config, kernel, device tree)

Boards that boot by ``tryboot`` (rpi4, rpi5, cm4, pi-zero-2w) need all three; the others
(``slot-dir`` and ``ota-partition`` boots: sim, pico-w, esp32-s3) take ``app/`` only. A board
that is flashed from a release (every board but sim) needs ``app/firmware/``. Anything else at
the top of the payload is refused: a bad release is found here, not at flash time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError

COMPONENTS = ("app", "os", "boot")


def layout(board: Board) -> dict[str, Any]:
    """{"components": the ones this board takes (all required), "app_needs": [...]}."""
    boot = str(board.storage.boot)
    comps = list(COMPONENTS) if boot == "tryboot" else ["app"]
    needs = [] if board.is_sim else ["firmware"]
    return {"components": comps, "app_needs": needs}


def _hint(board: Board, want: dict[str, Any]) -> str:
    parts = ", ".join(c + "/" for c in want["components"])
    extra = " with app/firmware/ (the firmware package)" if want["app_needs"] else ""
    return "lay PATH out as %s%s for board %s (README: release payload layout)" % (
        parts, extra, board.name)


def check_payload(path: Path, board: Board) -> list[str]:
    """Refuse a payload that does not fit the board; return its components."""
    path = Path(path)
    want = layout(board)
    hint = _hint(board, want)
    if not path.is_dir():
        raise ConfigError("the release payload must be a directory", str(path), hint=hint)
    entries = sorted(p.name for p in path.iterdir())
    stray = [n for n in entries if n not in want["components"] or not (path / n).is_dir()]
    if stray:
        raise ConfigError("%s %s no place in a %s release" % (
            ", ".join(repr(n) for n in stray), "has" if len(stray) == 1 else "have",
            board.name), str(path), hint=hint)
    missing = [c + "/" for c in want["components"] if c not in entries]
    if missing:
        raise ConfigError("a %s release needs %s" % (board.name, ", ".join(missing)),
                          str(path), hint=hint)
    for c in want["components"]:
        if not any(p.is_file() for p in (path / c).rglob("*")):
            raise ConfigError("%s/ is empty" % c, str(path), hint=hint)
    for need in want["app_needs"]:
        if not (path / "app" / need).is_dir():
            raise ConfigError("app/%s/ is missing: the %s board runs it" % (need, board.name),
                              str(path), hint=hint)
    return list(want["components"])
