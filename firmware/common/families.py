"""Board families: one delegated TUF role per family signs the releases of its boards."""

from __future__ import annotations

FAMILIES: dict[str, tuple[str, ...]] = {
    "rpi": ("rpi4", "rpi5", "cm4", "pi-zero-2w"),
    "mcu": ("pico-w", "esp32-s3"),
    "sim": ("sim",),
}


def family_of(board: str) -> str:
    """The family (delegated role name) a board belongs to; unknown boards are their own family."""
    for fam, boards in FAMILIES.items():
        if board in boards:
            return fam
    return board


def target_path(board: str) -> str:
    """The TUF target path of a board's current firmware bundle."""
    return board + "/firmware.bundle"


def sbom_path(board: str, version: str) -> str:
    """The TUF target path of a release's SBOM."""
    return "%s/sbom-%s.cdx.json" % (board, version)
