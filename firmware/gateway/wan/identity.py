"""The gateway's WAN identity and the platform broker address (CPython)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from firmware.core.command_auth import valid_token
from firmware.core.errors import ConfigError

DEFAULT_PORT = 8883


@dataclass(frozen=True)
class WanIdentity:
    """Who the gateway is on the WAN and whom it trusts (filled from the installation bundle).

    ``client_key_pem`` may carry the key bytes instead of ``client_key_path`` (a key unwrapped
    from encrypted storage never has to touch the disk in clear). ``command_verify_key`` is the
    site's raw 32-byte Ed25519 public key that ★★★ commands must be signed with.
    """

    gateway_id: str
    client_cert_path: Path
    platform_ca_path: Path
    command_verify_key: bytes
    broker_host: str
    broker_port: int = DEFAULT_PORT
    client_key_path: Path | None = None
    client_key_pem: bytes | None = None

    def __post_init__(self) -> None:
        if not valid_token(self.gateway_id) or "@" in self.gateway_id:
            raise ConfigError("gateway id must be 1-64 of [A-Za-z0-9._:-]", "wan identity",
                              "gateway_id")
        if (self.client_key_path is None) == (self.client_key_pem is None):
            raise ConfigError("give exactly one of client_key_path and client_key_pem",
                              "wan identity", "client_key")
        if len(self.command_verify_key) != 32:
            raise ConfigError("command verify key must be a raw 32-byte Ed25519 public key",
                              "wan identity", "command_verify_key")
        if not self.broker_host or not 0 < self.broker_port < 65536:
            raise ConfigError("broker host/port invalid", "wan identity", "broker")

    def __repr__(self) -> str:  # never show key material
        return f"WanIdentity({self.gateway_id} -> {self.broker_host}:{self.broker_port})"


def verify_key_from_pem(pem: bytes | str) -> bytes:
    """Raw 32-byte Ed25519 public key from the site's ``command-signing.pub`` (SPKI PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ConfigError("command public key is not a PEM public key", "bundle",
                          "platform.command_public_key")
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("command public key must be Ed25519", "bundle",
                          "platform.command_public_key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def parse_broker_url(url: str) -> tuple[str, int]:
    """Split ``mqtts://host[:port]`` into (host, port); plain mqtt:// is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtts", "ssl", "tls"):
        raise ConfigError(f"broker URL must use mqtts:// (TLS is mandatory): {url}",
                          "--broker", hint="e.g. mqtts://platform.example:8883")
    if not parts.hostname:
        raise ConfigError(f"broker URL has no host: {url}", "--broker")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"broker URL has an invalid port: {url}", "--broker")
    return parts.hostname, port
