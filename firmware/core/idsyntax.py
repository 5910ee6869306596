"""The id syntax alone, without the schema machinery (portable; see ``firmware.core.ids``).

For code that must stay small on a microcontroller's heap (the MicroPython device agent checks
its descriptor's ids with this and nothing heavier).
"""

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
