"""Build the WAN identity and ACL from an installed bundle (CPython)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from firmware.common.boardprofile import Board
from firmware.core.acl import DeviceAcl
from firmware.gateway.identity.install import IDENTITY, installed_identity, tls_key_passphrase
from firmware.gateway.wan.identity import WanIdentity, parse_broker_url, verify_key_from_pem


def wan_identity(state_dir: Path, board: Board | None, broker_url: str) -> WanIdentity:
    """The gateway's WAN identity: its certificate, its key (in memory), the pinned platform."""
    ident = Path(state_dir) / IDENTITY
    meta = installed_identity(state_dir)
    key = serialization.load_pem_private_key((ident / "gateway-key.pem").read_bytes(),
                                             tls_key_passphrase(state_dir, board))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    host, port = parse_broker_url(broker_url)
    return WanIdentity(
        gateway_id=meta["gateway_id"], client_cert_path=ident / "gateway.pem",
        platform_ca_path=ident / "platform-ca.pem",
        command_verify_key=verify_key_from_pem((ident / "platform-command.pub").read_bytes()),
        broker_host=host, broker_port=port, client_key_pem=key_pem)


def installed_acl(state_dir: Path) -> DeviceAcl:
    """The per-device ACL signed into the installed bundle (default deny)."""
    path = Path(state_dir) / IDENTITY / "acl.json"
    rules = json.loads(path.read_text()) if path.is_file() else []
    return DeviceAcl(rules)
