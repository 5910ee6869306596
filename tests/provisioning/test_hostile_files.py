"""Files a device maker, installer or operator hands in: hostile ones end in a named ConfigError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from firmware.device import credentials
from firmware.device.cli import load_ticket
from firmware.gateway.sim.house import HOUSE_FORMAT, load_house
from tests.provisioning.sitekit import Kit


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    return Kit(tmp_path_factory.mktemp("files"))


def refused(load: object, path: Path, text: str) -> ConfigError:
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(path)  # type: ignore[operator]
    assert str(path) in str(exc.value)
    return exc.value


def test_credential_files(kit: Kit, tmp_path: Path) -> None:
    good = json.loads(kit.device("cred-1").read_text())
    path = tmp_path / "c.json"
    assert credentials.load(kit.root / "cred-1.json")["device_id"] == "cred-1"
    exc = refused(credentials.load, path, json.dumps(dict(good, device_id="../x")))
    assert exc.field == "device_id"
    exc = refused(credentials.load, path, json.dumps(dict(good, private_kay="x")))
    assert exc.field == "private_kay" and "did you mean 'private_key'" in str(exc)
    exc = refused(credentials.load, path, json.dumps(dict(good, certificate=7)))
    assert exc.field == "certificate"
    exc = refused(credentials.load, path, '{"format": ' + "[" * 5000 + "]" * 5000 + "}")
    assert "nested deeper" in str(exc)


def test_ticket_file(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    refused(load_ticket, path, "[" * 100000)
    refused(load_ticket, path, '{"kind": "mamori-install-ticket", "x": NaN}')


def test_demo_house(tmp_path: Path) -> None:
    path = tmp_path / "house.json"
    dev = {"id": "lamp", "kind": "sensor", "transport": "ip", "maker": "M", "model": "L",
           "interval": 1, "level": 2, "credentials": "lamp.json"}
    doc = {"format": HOUSE_FORMAT, "gateway": "gw", "bundle": "b", "devices": [dev],
           "platform": {"ca": "a", "cert": "b", "key": "c", "crl": "d"}}
    assert load_house(_write(path, doc)).devices["lamp"]["interval"] == 1.0
    for bad, field in ((dict(dev, id="../lamp"), "devices[0].id"),
                       (dict(dev, interval=-1), "devices[0].interval"),
                       (dict(dev, intervl=1), "devices[0].intervl"),
                       (dict(dev, credentials="/etc/shadow"), "devices[0].credentials")):
        exc = refused(load_house, path, json.dumps(dict(doc, devices=[bad])))
        assert exc.field == field, (field, str(exc))
    exc = refused(load_house, path, json.dumps(doc).replace('"interval": 1', '"interval": NaN'))
    assert "NaN" in str(exc)


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path
