"""Canaries in every personal-data store of a gateway whose state lives on a loop-mounted ext4
image; after the resale reset, and after an ownership transfer, the raw image (freed blocks,
journal and all) is searched: no canary, and no old key that could still open anything.

The gateway really runs on the image (`mamori-gateway run`, status rewritten every second, the
WAN outbox queueing for an unreachable platform) and is driven over its HTTPS admin API.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.common import kek as devicekey
from firmware.gateway.identity.install import IDENTITY
from firmware.gateway.owner.resale import marker
from firmware.gateway.owner.stores import personal_store, store_of
from tests.admin.helpers import OWNER_NEW, https, https_login
from tests.admin.house import House, build_house
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, wait_for

IMAGE_MB = 96


def _sh(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.fail("%s failed: %s" % (" ".join(args), proc.stderr.strip()))
    return proc.stdout.strip()


@pytest.fixture
def flash(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(raw image file, its mount point): an ext4 'flash' on a loop device, always detached."""
    require("losetup")
    img, mnt = tmp_path / "flash.img", tmp_path / "mnt"
    mnt.mkdir()
    with img.open("wb") as f:
        f.truncate(IMAGE_MB << 20)
    _sh("mkfs.ext4", "-q", "-F", str(img))
    dev = _sh("losetup", "-f", "--show", str(img))
    try:
        _sh("mount", dev, str(mnt))
        try:
            yield img, mnt
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def _dead_broker() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return "mqtts://127.0.0.1:%d" % s.getsockname()[1]


def _secrets(state: Path) -> dict[str, bytes]:
    """The KEK and every wrapped key file, as they are now."""
    out = {"kek": devicekey.kek_path(state).read_bytes()}
    out.update({p.name: p.read_bytes() for p in (state / "keys" / "store").glob("*.key")})
    return out


def _live(house: House, action: object) -> None:
    """Run the gateway on the image, drive its admin API with ACTION(port, cafile), stop it."""
    state = house.state
    gw = subprocess.Popen(gateway_cmd("run", "--board", "sim", "--state-dir", str(state),
                                      "--broker", _dead_broker()),
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = wait_for(state, lambda d: (d.get("admin") or {}).get("listening") is True)
        # the installed gateway serves its admin API with its site-issued certificate
        action(int(doc["admin"]["port"]), state / IDENTITY / "ca-chain.pem")  # type: ignore
        # a few more status rewrites with the household's events in the recent list
        first = doc["updated_at"]
        wait_for(state, lambda d: d["updated_at"] > first + 2)
    finally:
        gw.terminate()
        gw.communicate(timeout=60)
    assert gw.returncode == 0


def _owner_session(house: House) -> object:
    c = house.canaries

    def act(port: int, ca: Path) -> None:
        owner = https_login(port, ca, house.owner, OWNER_NEW)
        for _ in range(3):  # rewrite the personal data and the device name (old blocks freed)
            assert https(port, ca, "PUT", "/api/owner/data",
                         {"name": c["name"], "email": c["email"], "address": c["address"]},
                         owner)[0] == 204
            assert https(port, ca, "PUT", "/api/settings/device_name",
                         {"value": c["devname"]}, owner)[0] == 200
        assert https(port, ca, "POST", "/api/login",
                     {"account": house.owner, "password": "wrong-guess"})[0] == 401
    return act


def _raw_hits(img: Path, needles: dict[str, bytes]) -> list[str]:
    raw = img.read_bytes()
    return sorted(k for k, n in needles.items() if n in raw)


def _umount(mnt: Path) -> None:
    _sh("sync")
    _sh("umount", str(mnt))


@pytest.mark.timeout(300)
def test_raw_image_after_resale_reset_holds_no_canary_and_no_old_key(
        tmp_path: Path, flash: tuple[Path, Path]) -> None:
    img, mnt = flash
    house = build_house(tmp_path, mnt / "state")
    _live(house, _owner_session(house))
    # every file the gateway wrote belongs to a store of the one list (owner/stores.py)
    files = [str(f.relative_to(house.state)) for f in house.state.rglob("*") if f.is_file()]
    assert len(files) > 20 and [f for f in files if store_of(f) is None] == []
    assert {store_of(f).path for f in files if personal_store(f)} >= {  # type: ignore[union-attr]
        "personal/data.bin", "admin/admin.db*", "wan/outbox.db*", "accesslog/",
        "run/status.json", "admin/diagnostics/"}
    secrets = _secrets(house.state)
    escrow = tmp_path / "escrow"
    escrow.mkdir()
    rep = subprocess.run(gateway_cmd("reset", "--resale", "--yes", "--json", "--state-dir",
                                     str(house.state), "--escrow-to", str(escrow)),
                         cwd=ROOT, capture_output=True, text=True, timeout=180,
                         input=house.installer + "\n")
    assert rep.returncode == 0, rep.stderr
    assert marker(house.state) is not None
    _umount(mnt)
    needles = {k: v.encode() for k, v in house.canaries.items()}
    # control: the search does see files' contents (the resale marker is on the image)
    assert _raw_hits(img, {"control": b"mamori-resale/2"}) == ["control"]
    assert _raw_hits(img, needles) == []
    assert _raw_hits(img, secrets) == []


@pytest.mark.timeout(300)
def test_raw_image_after_ownership_transfer_holds_no_trace_of_the_old_owner(
        tmp_path: Path, flash: tuple[Path, Path]) -> None:
    img, mnt = flash
    house = build_house(tmp_path, mnt / "state")
    before: dict[str, bytes] = {}
    new_owner: dict[str, str] = {}

    def act(port: int, ca: Path) -> None:
        _owner_session(house)(port, ca)  # type: ignore[operator]
        before.update(_secrets(house.state))
        inst = https_login(port, ca, "installer", house.installer)
        st, _, raw = https(port, ca, "POST", "/api/ownership/transfer",
                           {"new_owner": "suzuki"}, inst)
        assert st == 200, raw
        new_owner.update(json.loads(raw)["new_owner"])

    _live(house, act)
    after = _secrets(house.state)
    assert after["kek"] == before["kek"]  # the gateway keeps serving: its KEK stays
    rotated = {k: v for k, v in before.items()
               if k in ("admin-db-fields.key", "admin-session-pepper.key",
                        "admin-settings-mac.key", "wan-outbox-fields.key", "personal-data.key")}
    assert set(rotated) == {"admin-db-fields.key", "admin-session-pepper.key",
                            "admin-settings-mac.key", "wan-outbox-fields.key",
                            "personal-data.key"}
    assert all(after.get(k) != v for k, v in rotated.items())
    _umount(mnt)
    old = {k: house.canaries[k].encode()
           for k in ("owner", "name", "email", "address", "devname", "addr")}
    assert _raw_hits(img, old) == []
    # the old keys are not in any freed block either: with the KEK still here, one would
    # open whatever old journal page survived
    assert _raw_hits(img, rotated) == []
    assert new_owner["account"] == "suzuki"
