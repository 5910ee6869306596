"""`mamori flash deploy --device-list FILE` puts the list where the small-site gateway reads it,
covered by the slot manifest like the bundle (a changed list is a tampered board)."""

from __future__ import annotations

import json

from firmware.common.boards import load_board
from host_tools.flash import payload
from tests.conftest import require


def test_the_device_list_lands_in_the_state_dir_and_in_the_manifest() -> None:
    require("mpy-cross")
    board = load_board("pico-w")
    files = {f.path: f for f in payload.build(board, b"bundle", device_list=b'{"list": 1}')}
    assert files["/state/device-list.json"].data == b'{"list": 1}'
    manifest = json.loads(files["/slot_a/manifest.json"].data)
    assert manifest["files"]["/state/device-list.json"] == \
        files["/state/device-list.json"].sha256
    assert "/state/device-list.json" not in {f.path for f in payload.build(board, b"bundle")}
