"""The admin credential as operators pipe it in: typed, echoed, or the provisioned file itself.

The file `mamori provision gateway` writes (`<bundle>.admin-credential`) starts with a header line
("Initial admin credential for gateway …:", and "Admin credential of gateway …:" once `mamori
commission` changed it); piping that file is the natural thing to do, so the header is skipped
rather than taken for the credential.
"""

from __future__ import annotations

import sys
from typing import TextIO

HEADERS = ("Initial admin credential for gateway ", "Admin credential of gateway ")
MAX_INPUT = 64 * 1024


def credential_lines(stream: TextIO | None = None) -> list[str]:
    """The non-header lines given on stdin (at most 64 KiB read), line ends stripped."""
    text = (stream or sys.stdin).read(MAX_INPUT)
    return [ln.rstrip("\r") for ln in text.splitlines() if not ln.startswith(HEADERS)]


def read_credential(stream: TextIO | None = None) -> str:
    """The one admin credential on stdin ('' when none was given)."""
    lines = credential_lines(stream)
    return lines[0] if lines else ""
