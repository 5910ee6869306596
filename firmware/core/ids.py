"""The one syntax of gateway and device ids (portable).

Provisioning enforces it when it issues an identity; the gateway enforces it again on every id
it reads from a certificate, a hello or a file, because an id becomes a file name, a certificate
subject and an MQTT topic level: 1-63 characters, letters, digits, ``.``, ``_`` or ``-``, not
starting with ``.``, ``_`` or ``-`` (so never ``..``, never a path, never a hidden file).
"""

from firmware.core import schema
from firmware.core.idsyntax import ID_HINT, MAX_ID, valid_id

__all__ = ["ID_FIELD", "ID_HINT", "MAX_ID", "valid_id"]


def _syntax(value: object) -> str:
    return "" if valid_id(value) else "is not a valid id (" + ID_HINT + ")"


# The schema member for an id field (hello, bundle, credentials, house list).
ID_FIELD = schema.Check(schema.Str(64), _syntax)
