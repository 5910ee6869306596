"""Does this host look like the board the profile describes? (CPython)

`mamori-gateway run --board rpi4` on a developer's PC would load a default-drop nftables table
on that PC. Before any service starts, the profile's CPU architecture must match the host's,
and on a board that publishes its device-tree model (a Raspberry Pi does), the model too.
"""

from __future__ import annotations

import platform
from pathlib import Path

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError

DT_MODEL = Path("/proc/device-tree/model")
# What platform.machine() says -> the architecture name the profiles use.
_ARCH = {"arm64": "aarch64", "aarch64": "aarch64", "armv7l": "armv7l", "armv8l": "armv7l",
         "armv6l": "armv6l", "x86_64": "x86_64", "amd64": "x86_64", "riscv64": "riscv64",
         "xtensa": "xtensa"}
# Profile family -> words the device-tree model of such a board contains.
_MODEL_WORDS = {"rpi4": "Raspberry Pi 4", "rpi5": "Raspberry Pi 5",
                "cm4": "Compute Module 4", "pi-zero-2w": "Raspberry Pi Zero 2"}


def host_arch(machine: str | None = None) -> str:
    """The host's CPU architecture in the profiles' words."""
    m = (machine or platform.machine()).lower()
    return _ARCH.get(m, m)


def mismatch(board: Board, machine: str | None = None,
             dt_model: Path = DT_MODEL) -> str:
    """Why this host is not the profile's hardware ("" when it may be)."""
    want = board.cpu.arch
    if want != "any" and host_arch(machine) != host_arch(want):
        return "board profile %s is for %s hardware (%s); this host is %s" % (
            board.name, want, board.description, host_arch(machine))
    words = _MODEL_WORDS.get(board.name)
    try:
        model = dt_model.read_bytes().rstrip(b"\0").decode("utf-8", "replace")
    except OSError:
        return ""  # no device tree published (a PC, a container, qemu-user): arch decides
    if words and words not in model:
        return "board profile %s is for a %s; this host is a %s" % (board.name, words,
                                                                    model)
    return ""


def require_matching_host(board: Board) -> None:
    """ConfigError before anything touches the host when the profile is for other hardware."""
    why = mismatch(board)
    if why:
        raise ConfigError(why, hint="on a PC, run the simulated board: --board sim (nothing "
                                    "was changed on this host)")
