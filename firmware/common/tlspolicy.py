"""The gateway's TLS crypto policy (SR3-H-4, IPA TLS guideline) and the contexts it builds.

TLS 1.2 minimum with ECDHE + AEAD suites only, TLS 1.3 preferred, certificate and hostname
verification always on. Services that build their own ``ssl.SSLContext`` register a factory with
:func:`register_context` so that the self-test audits and exercises the context they really use.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
MIN_VERSION = ssl.TLSVersion.TLSv1_2
SIDES = ("client", "server")

ContextFactory = Callable[[], ssl.SSLContext]
_FACTORIES: dict[str, tuple[str, ContextFactory]] = {}


def apply_policy(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Harden a context in place: version floor, suites, no compression or renegotiation."""
    ctx.minimum_version = MIN_VERSION
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(cafile: str | None = None, cadata: str | None = None) -> ssl.SSLContext:
    """A client context as the gateway builds it (verification and hostname check on)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile, cadata=cadata)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return apply_policy(ctx)


def server_context(require_client_cert: bool = True) -> ssl.SSLContext:
    """A server context as the gateway builds it (mutual TLS unless told otherwise)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    return apply_policy(ctx)


def register_context(name: str, side: str) -> Callable[[ContextFactory], ContextFactory]:
    """Decorator: declare a factory of a context the gateway uses, for the self-test to audit."""
    if side not in SIDES:
        raise ValueError("side must be client or server")

    def deco(factory: ContextFactory) -> ContextFactory:
        _FACTORIES[name] = (side, factory)
        return factory

    return deco


def registered() -> dict[str, tuple[str, ContextFactory]]:
    """Every registered context factory: name -> (side, factory)."""
    return dict(_FACTORIES)


@register_context("gateway-client", "client")
def _default_client() -> ssl.SSLContext:
    return client_context()


@register_context("gateway-server", "server")
def _default_server() -> ssl.SSLContext:
    return server_context()


def audit(ctx: ssl.SSLContext, side: str) -> list[str]:
    """Static policy problems of a context (empty list = compliant)."""
    problems = []
    floor = ctx.minimum_version
    if floor == ssl.TLSVersion.MINIMUM_SUPPORTED or floor < MIN_VERSION:
        problems.append(f"minimum version is {floor.name}, policy needs TLSv1_2")
    for c in ctx.get_ciphers():
        if c.get("protocol") == "TLSv1.3":
            continue
        if not c.get("aead") or c.get("kea") != "kx-ecdhe":
            problems.append(f"weak suite enabled: {c['name']}")
    if side == "client":
        if ctx.verify_mode != ssl.CERT_REQUIRED:
            problems.append("server certificate verification is off")
        if not ctx.check_hostname:
            problems.append("hostname check is off")
    if not ctx.options & ssl.OP_NO_COMPRESSION:
        problems.append("TLS compression is allowed")
    return problems
