"""Entry point of `mamori`, the host-side tool."""

from __future__ import annotations

from collections.abc import Sequence

from firmware.cli_common import build_parser, run
from host_tools import commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run `mamori` with the given arguments."""
    parser = build_parser(
        "mamori",
        "Mamori host tools: boards, provisioning, flashing, releases, logs, risk.",
        commands,
    )
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
