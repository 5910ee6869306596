"""Fixtures for the WAN tests: a throw-away PKI and a real Mosquitto with mutual TLS."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.gateway.sim.broker import BrokerTls, EmbeddedBroker
from firmware.gateway.wan.identity import WanIdentity
from host_tools.platform.site import LAYOUT, PlatformSite, load_site
from tests.conftest import require
from tests.wan.pki import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A fresh site PKI (CA, broker, gateway 'gw-1', platform, command key)."""
    return make_world(tmp_path / "pki")


def start_broker(world: World, workdir: Path, **tls_over: object) -> EmbeddedBroker:
    """A started Mosquitto with TLS, require_certificate and the per-gateway ACL."""
    require("mosquitto")
    tls = BrokerTls(world.ca.path, world.broker.cert_path, world.broker.key_path)
    for k, v in tls_over.items():
        setattr(tls, k, v)
    b = EmbeddedBroker(workdir, tls)
    b.start()
    return b


@pytest.fixture
def broker(world: World, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A running broker for this test (stopped afterwards)."""
    b = start_broker(world, tmp_path / "broker")
    yield b
    b.stop()


def identity(world: World, port: int, host: str = "localhost", gateway_id: str = "gw-1",
             cert: Path | None = None, key: Path | None = None,
             ca: Path | None = None) -> WanIdentity:
    """The gateway's WAN identity in this world."""
    return WanIdentity(gateway_id=gateway_id,
                       client_cert_path=cert or world.gateway.cert_path,
                       client_key_path=key or world.gateway.key_path,
                       platform_ca_path=ca or world.ca.path,
                       command_verify_key=world.verify_key,
                       broker_host=host, broker_port=port)


def platform_site(world: World) -> PlatformSite:
    """A site directory in the layout host_tools.platform.site expects."""
    root = world.root / "site"
    for key, src in (("ca", world.ca.path), ("client_cert", world.platform.cert_path),
                     ("client_key", world.platform.key_path),
                     ("command_key", world.sign_key_path)):
        dst = root / LAYOUT[key]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    return load_site(root, need_signing_key=True)
