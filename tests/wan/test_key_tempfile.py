"""The gateway's WAN key, unwrapped in memory, never reaches the disk in clear (SR2-H-3)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from firmware.gateway.wan import tls as wan_tls
from firmware.gateway.wan.identity import WanIdentity
from tests.wan.pki import make_ca, make_leaf


def test_in_memory_client_key_is_never_written_in_clear(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    ca = make_ca(tmp_path, "platform-ca")
    leaf = make_leaf(tmp_path, ca, "gw-1")
    key = serialization.load_pem_private_key(leaf.key_path.read_bytes(), None)
    clear = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    leaf.key_path.unlink()
    kept = tmp_path / "kept"
    kept.mkdir()

    @contextlib.contextmanager
    def keep_dir(prefix: str = "", **_kw: object) -> Iterator[str]:
        d = kept / ("d%d" % len(os.listdir(kept)))
        d.mkdir(mode=0o700)
        yield str(d)  # not removed: what a crash at the wrong moment would leave behind

    monkeypatch.setattr(wan_tls.tempfile, "TemporaryDirectory", keep_dir)
    ident = WanIdentity(gateway_id="gw-1", client_cert_path=leaf.cert_path,
                        platform_ca_path=ca.path, command_verify_key=b"\0" * 32,
                        broker_host="localhost", client_key_pem=clear)
    wan_tls.client_context(ident)
    left = [p for p in kept.rglob("*") if p.is_file()]
    assert left, "the key was loaded through a temporary file"
    body = clear.splitlines()[1]
    for p in left:
        data = p.read_bytes()
        assert b"BEGIN PRIVATE KEY" not in data and body not in data, p
