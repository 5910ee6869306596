"""`mamori-gateway crl install`: an operator installs the site's signed CRL on the board.

Into the running gateway through its control socket (it closes the sessions of newly revoked
devices at once), or, when no gateway runs on the state directory, into the state directory
itself (under the gateway's lock; the next start enforces it). Refused with the reason when the
CRL is older than or as old as the installed one, not signed by the site CA, or another site's.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from firmware.common.cli import emit
from firmware.common.crl import MAX_CRL
from firmware.core.errors import ConfigError, StateError
from firmware.gateway.runtime.statedir import add_state_dir_arg, resolve


def register(sub: Any) -> None:
    """Add `crl install`."""
    p = sub.add_parser("crl")
    csub = p.add_subparsers(dest="crl_command", metavar="ACTION")
    csub.required = True
    ip = csub.add_parser("install", help="install a signed CRL (newer than the installed one)")
    add_state_dir_arg(ip)
    ip.add_argument("file", type=Path, metavar="FILE", help="the site's CRL (PEM), e.g. "
                                                            "SITE/ca/crl.pem")
    ip.add_argument("--json", action="store_true", help="machine-readable output")
    ip.set_defaults(func=_install)


@contextlib.contextmanager
def _gateway_lock(state_dir: Path) -> Iterator[None]:
    """Hold the gateway's lock so no gateway starts while the file is replaced."""
    from firmware.gateway.runtime.gateway import LOCK_FILE

    path = state_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError("a gateway runs on %s but its control socket did not answer"
                             % state_dir, "retry, or stop the gateway and install offline")
        yield
    finally:
        os.close(fd)


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CRL + 1)
    except FileNotFoundError:
        raise ConfigError("CRL file not found", str(path))
    if len(data) > MAX_CRL:
        raise ConfigError("is larger than %d bytes: not a CRL" % MAX_CRL, str(path))
    return data


def install(state_dir: Path, pem: bytes) -> dict[str, Any]:
    """Install into the running gateway, else into the state directory; the answer."""
    from firmware.gateway.identity.crl import install_crl
    from firmware.gateway.identity.install import installed_identity
    from firmware.gateway.runtime import control

    installed_identity(state_dir)  # StateError: nothing installed here
    try:
        res = control.request(state_dir, "crl.install", {"crl": pem.decode("ascii", "replace")})
        return dict(res, into="running gateway")
    except StateError as exc:
        if "no gateway is running" not in exc.message:
            raise
    with _gateway_lock(state_dir):
        out = install_crl(state_dir, pem).answer()
    return dict(out, into="state directory", revoked_devices=[])


def _install(args: argparse.Namespace) -> int:
    state_dir = resolve(args.state_dir)
    res = install(state_dir, _read(args.file))
    if res["status"] == "current":
        text = "CRL %d is already installed (%s)" % (res["number"], res["into"])
    else:
        cut = res.get("revoked_devices") or []
        text = ("CRL %d installed in the %s (was %s), valid until %s; %d newly revoked "
                "serial(s)%s" % (res["number"], res["into"], res.get("previous", "none"),
                                 res["next_update"], res["newly_revoked"],
                                 "; cut off: " + ", ".join(cut) if cut else ""))
    emit(res, args.json, text)
    return 0
