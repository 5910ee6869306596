"""Errors raised while flashing; each says what the operator should do next."""

from __future__ import annotations

from firmware.core.errors import ConfigError, IntegrityError, MamoriError


class PortError(MamoriError):
    """The serial port is absent, busy or unusable."""

    code = "port"
    exit_code = 3


class NotAnsweringError(MamoriError):
    """The board does not answer the raw REPL protocol."""

    code = "not-answering"
    exit_code = 4


class VerifyError(IntegrityError):
    """What was written differs from what was meant to be written."""

    exit_code = 5


class WrongBoardError(ConfigError):
    """The board profile does not fit the command or the connected board."""

    exit_code = 2


class TargetError(MamoriError):
    """The target refused an operation (write, image destination, tool missing)."""

    code = "target"
    exit_code = 6
