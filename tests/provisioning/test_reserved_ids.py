"""A device or gateway cannot be named like a platform identity (its certificate CN is its id,
and the reference broker maps the CN to the MQTT user: 'mamori-platform-client' may use every
gateway's topics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from provisioning.devices import issue_device
from provisioning.gateway import issue_gateway
from tests.provisioning.sitekit import Kit


@pytest.mark.parametrize("name", ["mamori-platform-client", "mamori-platform-server",
                                  "Mamori-Platform-Client"])
def test_platform_names_are_reserved(tmp_path: Path, name: str) -> None:
    kit = Kit(tmp_path)
    with pytest.raises(ConfigError):
        issue_device(kit.site, "ip", "Acme", "Lock1", name, tmp_path / "d.json")
    assert not (tmp_path / "d.json").exists()
    with pytest.raises(ConfigError):
        issue_gateway(kit.site, "sim", name, tmp_path / "g.bundle")
