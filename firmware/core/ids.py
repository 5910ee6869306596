"""The one syntax of gateway and device ids (portable).

Provisioning enforces it when it issues an identity; the gateway enforces it again on every id
it reads from a certificate, a hello or a file, because an id becomes a file name, a certificate
subject and an MQTT topic level: 1-63 characters, letters, digits, ``.``, ``_`` or ``-``, not
starting with ``.``, ``_`` or ``-`` (so never ``..``, never a path, never a hidden file).
"""

from firmware.core import schema

MAX_ID = 63
ID_HINT = "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"
_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_REST = _FIRST + "._-"


def valid_id(value: object) -> bool:
    """True when `value` is a well-formed gateway or device id."""
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID:
        return False
    if value[0] not in _FIRST:
        return False
    for ch in value:
        if ch not in _REST:
            return False
    return True


def _syntax(value: object) -> str:
    return "" if valid_id(value) else "is not a valid id (" + ID_HINT + ")"


# The schema member for an id field (hello, bundle, credentials, house list).
ID_FIELD = schema.Check(schema.Str(64), _syntax)
