"""The admin interface as a gateway service (composition root)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from firmware.core.events import Event
from firmware.gateway.admin.app import AdminApp
from firmware.gateway.admin.bind import check_bind
from firmware.gateway.admin.server import AdminServer
from firmware.gateway.admin.tlsctx import certificate_names, server_context
from firmware.gateway.runtime.endpoint import planned_port, remember
from firmware.gateway.runtime.gateway import Gateway, Service
from firmware.gateway.runtime.interfaces import Commission, FirmwareStatus

REAP_INTERVAL_S = 15.0


def admin_port(gw: Gateway) -> int:
    """The configured port, else the one used before, else the declared port (the sim board:
    any free port, then kept)."""
    return planned_port(gw.state_dir, gw.board, gw.config.admin.port, "admin")


class AdminService(Service):
    """Serves the local admin HTTPS API on a LAN address."""

    name = "admin"

    def __init__(self, gw: Gateway, commission: Commission | None = None,
                 firmware: FirmwareStatus | None = None) -> None:
        super().__init__(gw)
        self.app: AdminApp | None = None
        self.commission = commission  # the live commissioning self-test (from composition)
        self.firmware = firmware  # the update room's firmware status (from composition)
        self.server: AdminServer | None = None
        self.cert = ""
        self._reaper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Check the bind address, open the database, serve."""
        gw = self.gw
        host = check_bind(gw.config.admin.host or gw.config.lan_host, gw.board)
        loop = asyncio.get_running_loop()

        def emit(ev: Event) -> None:
            loop.call_soon_threadsafe(gw.emit, ev)

        self.app = AdminApp(gw.state_dir, gw.board, emit=emit, firmware=self.firmware,
                            commission=self.commission)
        ctx, self.cert = server_context(gw.state_dir, gw.board)
        self.server = AdminServer((host, admin_port(gw)), self.app, ctx,
                                  certificate_names(gw.state_dir))
        self.server.start()
        remember(gw.state_dir, host, self.server.port, "admin")
        self._reaper = self.gw.spawn("admin.reaper", self._reap)
        gw.emit(Event("admin.started", source="local-admin", action="listen",
                      target="%s:%d" % (host, self.server.port), result="ok",
                      params={"certificate": self.cert}))

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            if self.app is not None:
                await asyncio.to_thread(self.app.reap)

    async def stop(self) -> None:
        """Stop serving and close the database."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        if self.server is not None:
            await asyncio.to_thread(self.server.shutdown)
            self.server.server_close()
        if self.app is not None:
            self.app.close()

    def status(self) -> dict[str, Any]:
        """Where it listens and its security posture."""
        if self.server is None or self.app is None:
            return {"listening": False}
        doc = {"listening": True, "host": self.server.server_address[0],
               "port": self.server.port, "certificate": self.cert}
        st = self.app.status_doc()
        for k in ("installer_credential", "accounts", "sessions", "locked_settings_drift"):
            doc[k] = st[k]
        return doc
