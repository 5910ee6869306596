"""What a flashed board's state looks like to the gateway and its self-test: the installation
bundle the image put in the state dir is consumed once installed, the self-test finds the board's
installed profile, and its scratch copy survives the running gateway's control socket."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.gateway.identity.install import installed
from firmware.gateway.lan.tls import secure_lan
from firmware.gateway.selftest.context import CheckContext
from provisioning.gateway import issue_gateway
from provisioning.site import Site
from tests.conftest import ROOT


def test_a_bundle_in_the_state_dir_is_consumed_once_installed(tmp_path: Path) -> None:
    site = Site.init(tmp_path / "site", 2, "Flashed")
    state = tmp_path / "state"
    state.mkdir()
    issue_gateway(site, "sim", "gw-flashed", state / "installation.bundle")
    board = load_board("sim")
    got = secure_lan(state, board, state / "installation.bundle")
    assert got is not None and got[2] == "gw-flashed" and installed(state)
    assert not (state / "installation.bundle").exists()  # no plaintext key left at rest
    again = secure_lan(state, board, state / "installation.bundle")  # the unit's next start
    assert again is not None and again[2] == "gw-flashed"
    # A bundle kept elsewhere (an operator's copy) is installed and left alone.
    outside = tmp_path / "gw.bundle"
    issue_gateway(site, "sim", "gw-other", outside)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    assert secure_lan(fresh, board, outside) is not None and outside.is_file()
    # Never installed and the bundle missing: an error, not a silent start without identity.
    with pytest.raises(Exception, match="bundle|No such file"):
        secure_lan(tmp_path / "empty", board, tmp_path / "empty" / "installation.bundle")


def test_selftest_context_uses_the_installed_profile_and_skips_sockets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "etc-mamori-board.toml"
    profile.write_text((ROOT / "boards/rpi4.toml").read_text())
    monkeypatch.delenv("MAMORI_BOARDS_DIR", raising=False)
    monkeypatch.setenv("MAMORI_BOARD_FILE", str(profile))
    live = tmp_path / "live"
    (live / "run").mkdir(parents=True)
    (live / "status.json").write_text("{}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(live / "run" / "control.sock"))  # as a running gateway holds it
    try:
        ctx = CheckContext(live, 2, "rpi4", tmp_path / "work")
        real = shutil.copy2

        def racing(src: object, dst: object, **kw: object) -> object:
            if str(src).endswith(".tmp"):  # the gateway renames its temporary file meanwhile
                Path(src).unlink()
            return real(src, dst)

        (live / "run" / ".status.json.tmp").write_text("{}")
        monkeypatch.setattr(shutil, "copy2", racing)
        assert ctx.board().name == "rpi4"
        scratch = ctx.scratch()
        assert (scratch / "status.json").is_file()
        assert not (scratch / "run" / "control.sock").exists()
    finally:
        sock.close()
