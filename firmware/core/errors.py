"""The error hierarchy shared by every Mamori component (portable)."""


class MamoriError(Exception):
    """Base of every error Mamori raises on purpose; its message says what to do."""

    code = "error"

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return self.message + " (" + self.hint + ")"
        return self.message

    def to_dict(self) -> dict:
        """Machine-readable form for --json output."""
        return {"error": self.code, "message": self.message, "hint": self.hint}


class ConfigError(MamoriError):
    """A configuration or data file is missing, malformed or inconsistent."""

    code = "config"

    def __init__(self, message: str, source: str = "", field: str = "", hint: str = "") -> None:
        prefix = ""
        if source:
            prefix = source + ": "
        if field:
            prefix = prefix + "field '" + field + "': "
        super().__init__(prefix + message, hint)
        self.source = source
        self.field = field


class ProtocolError(MamoriError):
    """A peer sent bytes that do not follow the protocol (malformed, oversized, out of order)."""

    code = "protocol"


class AuthError(MamoriError):
    """Authentication or authorisation failed."""

    code = "auth"


class IntegrityError(MamoriError):
    """Signed or chained data failed verification."""

    code = "integrity"


class PolicyError(MamoriError):
    """A policy refused the operation."""

    code = "policy"


class StateError(MamoriError):
    """The operation does not fit the current state (e.g. gateway not running, not provisioned)."""

    code = "state"


class CommandRefused(AuthError):
    """A platform command was refused; ``reason`` is a stable code from
    ``firmware.core.command_auth.REASONS`` (here so a device agent that only refuses needs
    nothing heavier)."""

    code = "command-refused"

    def __init__(self, reason: str, message: str, hint: str = "") -> None:
        super().__init__(reason + ": " + message, hint)
        self.reason = reason
