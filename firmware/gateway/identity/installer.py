"""Installing a bundle into a RUNNING blank gateway, through its local control socket (CPython).

A freshly flashed board runs `mamori-gateway run` with no identity: it serves no device, no LAN
and no admin API. The installer's tool (`mamori commission --target STATE_DIR`) hands it the
bundle with the ``install`` control command (root or the gateway's own user only, see
``runtime/control.py``); the gateway verifies and imports it exactly as ``--bundle`` would, then
restarts its services in-process with the new identity.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from firmware.core.errors import ConfigError, StateError
from firmware.gateway.identity.install import (
    install_bundle,
    installed,
    installed_from,
    installed_identity,
)
from firmware.gateway.runtime.gateway import Gateway

RESTART_DELAY_S = 0.2  # the answer leaves before the services stop


def install_command(gw: Gateway) -> Any:
    """The handler of the ``install`` control command: {"bundle": PATH} -> the identity."""

    async def install(params: dict[str, Any]) -> dict[str, Any]:
        path = params.get("bundle")
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigError("the install command needs the bundle's absolute path",
                              hint='{"bundle": "/path/to/gw.bundle"}')
        if installed(gw.state_dir):
            # Installed into the directory while this blank gateway was starting: the same
            # bundle only needs the restart; any other is refused.
            if not installed_from(gw.state_dir, Path(path)):
                raise StateError("this gateway is already installed",
                                 "reset it (`mamori-gateway reset --resale`) to install "
                                 "another identity")
            meta = installed_identity(gw.state_dir)
        else:
            meta = await asyncio.to_thread(install_bundle, gw.state_dir, Path(path), gw.board)
        asyncio.get_running_loop().call_later(RESTART_DELAY_S, gw.request_restart)
        return {"gateway_id": meta["gateway_id"], "site_id": meta["site_id"],
                "level": meta["level"], "restarting": True}

    return install
