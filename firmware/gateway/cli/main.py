"""Entry point of `mamori-gateway`, the command that runs on the board."""

from __future__ import annotations

from collections.abc import Sequence

from firmware.common.cli import build_parser, run
from firmware.gateway import cli as verbs


def main(argv: Sequence[str] | None = None) -> int:
    """Run `mamori-gateway` with the given arguments."""
    parser = build_parser(
        "mamori-gateway", "Mamori gateway runtime (runs on the board).", verbs, argv
    )
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
