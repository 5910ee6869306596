"""Outputs appear under their final name complete, or not at all: Ctrl-C while `mamori flash
image` writes leaves no partial image that looks like a good one; a report or export that
fails half-way leaves nothing (and an older file untouched)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boards import load_board
from firmware.common.fsutil import write_output
from host_tools.flash import image
from tests.conftest import require_image_tools


def test_ctrl_c_while_writing_an_image_leaves_no_partial_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_image_tools()
    out = tmp_path / "gateway.img"
    real = image._write_blocks

    def interrupted(dst: int, src: Path, total: int, progress: Any) -> None:
        os.write(dst, Path(src).read_bytes()[: 4 * 1024 * 1024])  # 4 MiB in, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(image, "_write_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        image.flash_image(load_board("rpi4"), str(out))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file either

    monkeypatch.setattr(image, "_write_blocks", real)
    desc = image.flash_image(load_board("rpi4"), str(out))
    assert desc["verified"] is True and out.stat().st_size == desc["bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["gateway.img"]


def test_a_report_that_fails_half_way_leaves_the_old_one(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "selftest.json"
    write_output(report, '{"old": true}\n')

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_output(report, '{"new": "half"}')
    assert report.read_text() == '{"old": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["selftest.json"]
    monkeypatch.undo()
    write_output(report, '{"new": true}\n')
    assert report.read_text() == '{"new": true}\n' and oct(report.stat().st_mode & 0o777) == \
        oct(0o644)
