"""The admin service in a running gateway: LAN-only bind, HTTPS with the header set."""

from __future__ import annotations

import asyncio
import http.client
import ssl
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import PolicyError
from firmware.gateway.admin.service import AdminService
from firmware.gateway.admin.tlsctx import SELF_CERT
from firmware.gateway.admin.web import REQUIRED_HEADERS
from firmware.gateway.runtime.config import AdminConfig, GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from tests.admin.helpers import provision


def _gw(state: Path, admin_port: int | None = None, admin_host: str | None = None) -> Gateway:
    cfg = GatewayConfig(board_name="sim", state_dir=state,
                        admin=AdminConfig(host=admin_host, port=admin_port))
    return Gateway(cfg, load_board("sim"))


def test_service_serves_https_on_the_lan_address(tmp_path: Path) -> None:
    state = tmp_path / "state"
    provision(state)
    gw = _gw(state, admin_port=0)

    async def main() -> tuple[int, dict[str, str], dict[str, object]]:
        svc = AdminService(gw)
        await svc.start()
        try:
            port = svc.server.port if svc.server else 0

            def get() -> tuple[int, dict[str, str]]:
                ctx = ssl.create_default_context(cafile=str(state / SELF_CERT))
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
                conn.request("GET", "/api/status")
                r = conn.getresponse()
                r.read()
                conn.close()
                return r.status, dict(r.getheaders())

            status, headers = await asyncio.to_thread(get)
            return status, headers, svc.status()
        finally:
            await svc.stop()

    status, headers, st = asyncio.run(main())
    assert status == 401
    assert all(h in headers for h in REQUIRED_HEADERS)
    assert "Python" not in headers.get("Server", "")
    assert st["listening"] and st["installer_credential"] == "initial"
    assert any(e["kind"] == "admin.started" for e in gw.recent)


def test_service_refuses_a_wildcard_bind(tmp_path: Path) -> None:
    state = tmp_path / "state"
    provision(state)
    gw = _gw(state, admin_port=0, admin_host="0.0.0.0")
    with pytest.raises(PolicyError):
        asyncio.run(AdminService(gw).start())
