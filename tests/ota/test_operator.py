"""Offline updates are operator-only; R2-9: a resold gateway serves again only after an update
to the latest release succeeded (and the install history says so)."""

from __future__ import annotations

import tarfile
from pathlib import Path

from firmware.gateway.cli.update import local_console
from firmware.gateway.identity.install import change_admin_credential
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.resalemarker import resale_pending
from firmware.gateway.update import status
from tests.ota.helpers import ADMIN_SECRET, Env, admin_state, gateway_cli, tree_digest


def _stick(env: Env, tmp: Path) -> Path:
    tar_path = tmp / "update.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(env.repo.path / "metadata", "metadata")
        tar.add(env.repo.path / "targets", "targets")
    return tar_path


def test_offline_update_needs_the_operator(env: Env, tmp_path: Path) -> None:
    env.publish("1.0")
    env.agent().run()
    initial = admin_state(env, tmp_path, change=False)
    env.publish("1.1")
    stick = _stick(env, tmp_path)
    inactive = env.slot("a")
    before = tree_digest(inactive)
    args = ["update", "--state-dir", str(env.state), "--from", str(stick)]
    for secret, words in (("", "admin credential on stdin"),
                          ("wrong-credential-123", "wrong admin credential"),
                          (initial, "change")):
        r = gateway_cli(*args, input=secret + "\n")
        assert r.returncode == 1, r.stdout
        assert words in r.stderr.lower() or words in r.stderr, r.stderr
        assert tree_digest(inactive) == before
    r = gateway_cli(*args, "--console")  # not a console: stdin is a pipe here
    assert r.returncode == 1 and "local console" in r.stderr
    assert tree_digest(inactive) == before
    change_admin_credential(env.state, initial, ADMIN_SECRET)
    r = gateway_cli(*args, input=ADMIN_SECRET + "\n")
    assert r.returncode == 0, r.stderr
    assert status(env.state)["version"] == "1.1"


def test_url_updates_stay_automatic(env: Env) -> None:
    env.publish("1.0")
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url,
                    "--trust-root", str(env.repo.meta_dir / "1.root.json"))
    assert r.returncode == 0, r.stderr


def test_console_rule() -> None:
    assert local_console(0, "/dev/ttyS0") and local_console(0, "/dev/tty1")
    assert local_console(0, "/dev/console") and local_console(0, "/dev/ttyAMA0")
    assert not local_console(1000, "/dev/ttyS0")
    assert not local_console(0, "/dev/pts/3") and not local_console(0, None)


def test_resale_marker_cleared_by_update_to_latest(env: Env) -> None:
    env.publish("1.0")
    env.agent().run()
    resale_reset(env.state, env.board, yes=True)
    assert resale_pending(env.state)
    assert status(env.state)["version"] == "1.0"  # the firmware survived the reset
    # No source: nothing was checked, so nothing proves the firmware is the latest.
    assert env.agent(source="").run()["result"] == "current"
    assert resale_pending(env.state)
    # A newer release that fails its trial does not count.
    env.publish("1.1", health_rc=1)
    assert env.agent().run()["result"] == "rolled_back"
    assert resale_pending(env.state)
    env.publish("1.2")
    res = env.agent().run()
    assert res["result"] == "installed" and res["resale_cleared"] is True
    assert not resale_pending(env.state)
    hist = status(env.state)["history"]
    assert hist[-1]["action"] == "resale-cleared" and hist[-1]["version"] == "1.2"


def test_resale_marker_cleared_when_already_latest(env: Env) -> None:
    env.publish("1.0")
    env.agent().run()
    resale_reset(env.state, env.board, yes=True)
    res = env.agent().run()  # verified metadata: 1.0 is the latest release
    assert res["result"] == "current" and res["resale_cleared"] is True
    assert not resale_pending(env.state)
    assert [h["action"] for h in status(env.state)["history"]] == ["installed",
                                                                   "resale-cleared"]
