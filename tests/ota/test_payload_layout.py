"""`mamori release publish` checks the payload layout per board (app/, os/, boot/) and refuses
a release that would only fail at flash time."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.core.errors import ConfigError
from host_tools.release.layout import check_payload
from host_tools.release.repo import ReleaseRepo
from tests.gateway.helpers import host_cmd
from tests.ota.rpi import rpi_payload


def _tree(base: Path, *files: str) -> Path:
    for f in files:
        (base / f).parent.mkdir(parents=True, exist_ok=True)
        (base / f).write_text("x\n")
    return base


@pytest.mark.parametrize("board,files,needle", [
    ("rpi4", ["app/firmware/__init__.py", "os/etc/hostname"], "needs boot/"),
    ("rpi4", ["app/main.py", "os/etc/hostname", "boot/cmdline.txt"], "app/firmware/ is missing"),
    ("rpi4", ["firmware/__init__.py", "os/x", "boot/y"], "'firmware' has no place"),
    ("sim", ["app/main.py", "boot/cmdline.txt"], "'boot' has no place in a sim release"),
    ("sim", ["main.py"], "'main.py' has no place"),
    ("pico-w", ["app/main.py"], "app/firmware/ is missing"),
    ("esp32-s3", ["app/firmware/__init__.py", "os/etc/x"], "'os' has no place"),
])
def test_bad_layouts_are_refused_by_name(tmp_path: Path, board: str, files: list[str],
                                         needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as err:
        check_payload(_tree(tmp_path / "p", *files), load_board(board))
    assert "README" in str(err.value)


def test_good_layouts_pass(tmp_path: Path) -> None:
    assert check_payload(rpi_payload(tmp_path, "1"), load_board("rpi4")) == ["app", "os", "boot"]
    assert check_payload(_tree(tmp_path / "s", "app/main.py"), load_board("sim")) == ["app"]
    with pytest.raises(ConfigError, match="app/ is empty"):
        (tmp_path / "e" / "app").mkdir(parents=True)
        check_payload(tmp_path / "e", load_board("sim"))


def test_publish_refuses_before_signing_anything(tmp_path: Path) -> None:
    import subprocess

    from tests.conftest import ROOT

    repo = ReleaseRepo.init(tmp_path / "repo")
    before = sorted(p.name for p in (repo.path / "metadata").iterdir())
    bad = _tree(tmp_path / "bad", "app/main.py", "os/etc/hostname")
    proc = subprocess.run(host_cmd("release", "publish", str(repo.path), "--board", "rpi4",
                                   "--version", "1.0.0", str(bad), "--override-scan",
                                   "layout test"), cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "needs boot/" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in (repo.path / "metadata").iterdir()) == before
    shutil.rmtree(bad)
