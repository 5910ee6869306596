"""A device only talks to a Mamori gateway: another site-CA server certificate is refused."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from firmware.core import frames
from firmware.core.errors import AuthError
from firmware.device.credentials import tls_context as client_context
from firmware.device.portable.agent import DeviceAgent
from firmware.device.runner import run_session
from tests.provisioning.sitekit import Kit, load


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("gwid"))


def _impostor_context(kit: Kit) -> ssl.SSLContext:
    # The platform's MQTT server certificate: issued by the same site CA, serverAuth, but it is
    # not a gateway (no urn:mamori:gateway: URI).
    p = Path(kit.site.root) / "platform"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(p / "server.pem"), str(p / "server.key"))
    return ctx


def test_device_refuses_site_server_certificate_that_is_not_a_gateway(kit: Kit) -> None:
    creds = load(kit.device("door-gwid"))
    welcomed: list[bool] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        dec = frames.FrameDecoder()
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    return
                for msg in dec.feed(data):
                    if msg["type"] == "hello":
                        welcomed.append(True)
                        writer.write(frames.encode({"type": "welcome", "gateway": "evil"}))
                        await writer.drain()
        except (ConnectionError, ssl.SSLError):
            return
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=_impostor_context(kit))
        port = server.sockets[0].getsockname()[1]
        agent = DeviceAgent(creds["device_id"], kind="lock", interval=0.2,
                            maker=creds["maker"], model=creds["model"], transport="ip")
        try:
            with pytest.raises(AuthError, match="not a Mamori gateway"):
                await run_session(agent, "127.0.0.1", port, client_context(creds),
                                  heartbeats=1)
        finally:
            server.close()
            await server.wait_closed()
        assert not agent.ready

    asyncio.run(main())
    assert welcomed == []  # the hello never reached the impostor
