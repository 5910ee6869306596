"""The first-use change of a gateway's admin credential, made by the installer's tool.

The initial credential (``BUNDLE.admin-credential``, 0600, from `mamori provision gateway`)
opens nothing but its own change (C6). The installer's tool makes a new random credential, keeps
it first in ``BUNDLE.admin-credential.new`` (0600), changes it on the gateway, then renames it
over the initial file. A tool killed at any point finishes the change on its next run; the
credential is never printed and never lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from firmware.common.fsutil import atomic_write
from firmware.common.passwords import new_credential
from firmware.core.errors import AuthError, ConfigError

SUFFIX = ".admin-credential"
PENDING = ".new"
CHANGED_MARK = "changed from the initial one"

# change(old, new): AuthError when `old` is not the current credential.
Change = Callable[[str, str], None]
# current(secret): whether `secret` is the gateway's current (already changed) credential.
Current = Callable[[str], bool]


def credential_file(bundle: Path) -> Path:
    """Where `mamori provision gateway` put the bundle's initial admin credential."""
    return Path(bundle).with_name(Path(bundle).name + SUFFIX)


def read_secret(path: Path) -> str:
    """The credential in a credential file (its last non-empty line)."""
    try:
        lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    except FileNotFoundError:
        raise ConfigError("the admin credential file is missing", str(path),
                          hint="it is written beside the bundle by `mamori provision gateway`")
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ConfigError("the admin credential file is empty", str(path))
    return lines[-1]


def is_changed(path: Path) -> bool:
    """Whether the file already holds the changed (not the initial) credential."""
    try:
        return CHANGED_MARK in Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return False


def _text(gateway: str, secret: str) -> bytes:
    return ("Admin credential of gateway %s (%s at installation; keep it secret):\n%s\n"
            % (gateway, CHANGED_MARK, secret)).encode()


def first_use_change(path: Path, gateway: str, change: Change, current: Current) -> str:
    """Change the initial credential in `path` on the gateway; return "changed" or "already".

    Afterwards `path` holds the new credential (0600) and says so.
    """
    path = Path(path)
    if is_changed(path):
        return "already"
    pending = path.with_name(path.name + PENDING)
    if pending.is_file():
        new = read_secret(pending)
    else:
        new = new_credential(6, 4)
        atomic_write(pending, _text(gateway, new), 0o600, dir_mode=0o700, sync_dir=True)
    try:
        change(read_secret(path), new)
    except AuthError:
        # A previous run may have changed it and died before the rename below.
        if not current(new):
            raise AuthError("the gateway refuses the initial admin credential in %s" % path,
                            "it was changed by someone else: reset the gateway or ask who "
                            "changed it")
    os.replace(pending, path)
    return "changed"


def change_on_state_dir(state_dir: Path) -> tuple[Change, Current]:
    """The change made directly in a gateway's state directory (the console's way)."""
    from firmware.common.passwords import MustChangeCredential
    from firmware.gateway.identity import install

    def change(old: str, new: str) -> None:
        install.change_admin_credential(state_dir, old, new)

    def current(secret: str) -> bool:
        try:
            install.authenticate_admin(state_dir, secret)
        except MustChangeCredential:
            return False
        except AuthError:
            return False
        return True

    return change, current
