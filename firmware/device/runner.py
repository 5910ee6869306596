"""Asyncio driver for the portable device agent: sockets, TLS and the clock (CPython)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from firmware.common.certs import gateway_id_of
from firmware.common.gatewaypin import GatewayPin
from firmware.common.leantls import open_tls_connection
from firmware.core import refusals
from firmware.core.errors import AuthError, StateError
from firmware.device.agentloop import Report, drive, reconnect, silent
from firmware.device.portable.agent import DeviceAgent

CONNECT_TIMEOUT = 5.0
# OpenSSL alert and verify reasons -> what the installer reads (and can act on).
_TLS_WORDS = (
    ("CERTIFICATE_REVOKED", refusals.explain(refusals.CREDENTIAL_REVOKED)),
    ("CERTIFICATE_VERIFY_FAILED", "this device does not trust the gateway's certificate: it is "
                                  "not the gateway of the site that issued the device's "
                                  "credentials (check the address, or issue credentials for "
                                  "this site)"),
    ("CERTIFICATE_EXPIRED", "the gateway found this device's certificate expired (issue new "
                            "credentials with `mamori provision device`)"),
    ("ALERT_", "the gateway did not accept this device's certificate: another site's, expired "
               "or revoked (check it with `mamori provision inventory SITE`)"),
)


def tls_words(exc: ssl.SSLError) -> str:
    """A failed TLS exchange with the gateway, in the installer's words."""
    reason = str(exc.reason or exc)
    for needle, words in _TLS_WORDS:
        if needle in reason.upper():
            return "TLS handshake with the gateway failed: %s [%s]" % (words, reason)
    return "TLS handshake with the gateway failed: %s" % reason


async def run_session(agent: DeviceAgent, host: str, port: int,
                      ssl_context: ssl.SSLContext | None = None,
                      server_hostname: str | None = None,
                      heartbeats: int | None = None,
                      stop: asyncio.Event | None = None,
                      pin: GatewayPin | None = None,
                      local_addr: str | None = None, report: Report = silent) -> int:
    """Connect, authenticate, then heartbeat and serve commands.

    Returns the number of heartbeats sent; ends after `heartbeats` when given, when `stop` is
    set, or when the gateway closes the connection (StateError) or refuses us (AuthError).
    With `pin`, a TLS peer that is not exactly the pinned gateway is refused (AuthError) before
    a single byte is sent to it. `local_addr` is the source address to connect from (simulated
    devices each have one).
    """
    bind = (local_addr, 0) if local_addr else None
    try:
        if ssl_context is not None:
            # lean TLS: no 256 KiB receive buffer per session (1,000 agents in one process)
            reader, writer = await asyncio.wait_for(
                open_tls_connection(host, port, ssl_context, server_hostname, local_addr=bind),
                CONNECT_TIMEOUT)
        else:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, local_addr=bind), CONNECT_TIMEOUT)
    except ssl.SSLError as exc:
        raise AuthError(tls_words(exc))
    except (TimeoutError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise StateError("cannot reach the gateway at %s:%d (%s)" % (host, port, why),
                         "is it running, and is this its LAN address (`mamori-gateway status` "
                         "shows lan.host and lan.port)?")
    if ssl_context is not None:
        _check_gateway(writer, pin)

    async def read(wait: float) -> bytes:
        try:
            data = await asyncio.wait_for(reader.read(4096), wait)
        except ssl.SSLError as exc:
            # TLS 1.3: the gateway judges our certificate after our side finished.
            raise AuthError(tls_words(exc))
        except ConnectionError as exc:
            raise StateError("connection to the gateway failed: %s" % exc)
        if data == b"":
            if not agent.ready:
                raise AuthError("gateway closed the connection during authentication")
            raise StateError("gateway closed the connection")
        return data

    async def write(data: bytes) -> None:
        writer.write(data)
        try:
            await writer.drain()
        except ConnectionError as exc:  # the gateway dropped us (TLS 1.3: after our Finished)
            if not agent.ready:
                raise AuthError("gateway closed the connection during authentication")
            raise StateError("connection to the gateway failed: %s" % exc)

    try:
        return await drive(agent, read, write, CONNECT_TIMEOUT, heartbeats, stop, report)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)


def _check_gateway(writer: asyncio.StreamWriter, pin: GatewayPin | None = None) -> None:
    # The site CA also issues the platform's server certificate: the CA check alone would let
    # any site server pose as the gateway, so the peer must carry a gateway URI; with a pin it
    # must be the device's own gateway (another gateway's copied key gets nothing).
    ssl_obj = writer.get_extra_info("ssl_object")
    der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
    if pin is not None:
        try:
            pin.check(der)
        except AuthError:
            writer.close()
            raise
        return
    try:
        if der is None:
            raise AuthError("no certificate")
        gateway_id_of(der)
    except (AuthError, ValueError):
        writer.close()
        raise AuthError("the TLS peer is not a Mamori gateway (no gateway URI in its "
                        "certificate)", hint="check the gateway address")


async def run_forever(agent: DeviceAgent, host: str, port: int,
                      ssl_context: ssl.SSLContext | None = None,
                      server_hostname: str | None = None,
                      stop: asyncio.Event | None = None, backoff_max: float = 30.0,
                      pin: GatewayPin | None = None,
                      local_addr: str | None = None, report: Report = silent) -> None:
    """Keep a session up, reconnecting with jittered back-off until `stop` is set; every step
    (connecting, connected, refused and why, unreachable, next attempt) goes to `report`."""
    await reconnect(lambda: run_session(agent, host, port, ssl_context, server_hostname,
                                        stop=stop, pin=pin, local_addr=local_addr,
                                        report=report), stop, backoff_max, report)
