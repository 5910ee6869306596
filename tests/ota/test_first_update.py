"""Ready for its first update: the installation bundle carries the release repository's trusted
TUF root, so a freshly installed gateway accepts its first update (no separate root step)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware.core.errors import ConfigError
from firmware.gateway.identity.install import install_bundle
from firmware.gateway.update import status
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.ota.helpers import Env, gateway_cli


def _installed(env: Env, tmp: Path, release: Path | None) -> None:
    site = Site.init(tmp / "site", 2, "First update")
    bundle = tmp / "gw.bundle"
    issue_gateway(site, "sim", "gw-first", bundle, release=release)
    install_bundle(env.state, bundle)


def test_a_fresh_gateway_accepts_its_first_update(env: Env, tmp_path: Path) -> None:
    env.publish("1.0", changelog="first")
    _installed(env, tmp_path, env.repo.path)
    assert json.loads((env.state / "identity" / "release-root.json").read_text())[
        "signed"]["_type"] == "root"
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["result"] == "installed"
    assert status(env.state)["version"] == "1.0"


def test_without_the_root_in_the_bundle_the_first_update_is_refused(env: Env,
                                                                      tmp_path: Path) -> None:
    env.publish("1.0")
    _installed(env, tmp_path, None)
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 1 and "no trusted root metadata" in r.stderr
    # The manufacture step alone: installs the root, checks and installs nothing.
    r = gateway_cli("update", "--state-dir", str(env.state), "--trust-root",
                    str(env.repo.meta_dir / "1.root.json"))
    assert r.returncode == 0 and "trusted root installed" in r.stdout, r.stderr
    assert status(env.state)["source"] == "factory image"
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 0, r.stderr
    # Given again: nothing to do, and said so. Another root (another vendor's repository):
    # refused, and the trusted one stays (it once answered "installed" and changed nothing).
    trusted = env.state / "update" / "tuf" / "root.json"
    before = trusted.read_bytes()
    r = gateway_cli("update", "--state-dir", str(env.state), "--trust-root",
                    str(env.repo.meta_dir / "1.root.json"), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["trust"] == "already-trusted", r.stderr
    other = json.loads((env.repo.meta_dir / "1.root.json").read_text())
    other["signed"]["keys"] = {}  # not this repository's root
    (tmp_path / "other-root.json").write_text(json.dumps(other))
    r = gateway_cli("update", "--state-dir", str(env.state), "--trust-root",
                    str(tmp_path / "other-root.json"))
    assert r.returncode == 1 and "a different trusted root is already installed" in r.stderr
    assert "Traceback" not in r.stderr and trusted.read_bytes() == before


def test_a_bundle_refuses_a_release_root_that_is_not_tuf_root(tmp_path: Path) -> None:
    site = Site.init(tmp_path / "site", 2, "Bad root")
    bad = tmp_path / "root.json"
    bad.write_text(json.dumps({"signed": {"_type": "targets"}, "signatures": []}))
    with pytest.raises(ConfigError, match="not TUF root metadata"):
        issue_gateway(site, "sim", "gw-bad", tmp_path / "gw.bundle", release=bad)
