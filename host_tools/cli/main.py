"""Entry point of `mamori`, the host-side tool."""

from __future__ import annotations

from collections.abc import Sequence

from firmware.common.cli import build_parser, run
from host_tools import cli as verbs


def main(argv: Sequence[str] | None = None) -> int:
    """Run `mamori` with the given arguments."""
    parser = build_parser(
        "mamori",
        "Mamori host tools: boards, provisioning, flashing, releases, logs, risk.",
        verbs, argv,
    )
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
