"""Raspberry Pi install for real: ext4 slot images on partitions, read-back verify, tryboot
trial, commit by rewriting autoboot.txt, rollback by health check or exhausted trial boots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.update import status
from firmware.gateway.update.blockslot import BlockSlots, partition_numbers
from firmware.gateway.update.boot import autoboot_txt, parse_autoboot
from firmware.gateway.update.store import Paths
from tests.conftest import require, require_image_tools
from tests.ota.helpers import Env
from tests.ota.rpi import RpiRig, debugfs_cat, flash_image, sha_file


@pytest.fixture(scope="module")
def flashed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One `mamori flash image --board rpi4` per module (and test worker): each rig copies it."""
    require_image_tools()
    image = tmp_path_factory.mktemp("flashed") / "rpi4.img"
    return image, flash_image(image)


@pytest.fixture
def rig(env: Env, flashed: tuple[Path, dict[str, Any]]) -> Iterator[RpiRig]:
    """An rpi4 gateway whose slots are files cut out of (a copy of) a flashed image."""
    r = RpiRig(env, flashed=flashed)
    try:
        yield r
    finally:
        r.close()


def _install_and_commit(rig: RpiRig, version: str) -> str:
    """Run the agent until the trial reboot, boot the trial, let the agent commit."""
    first = rig.agent().run()
    assert first["result"] == "rebooting" and first["version"] == version, first
    assert rig.requests[-1] == "0 tryboot"
    rig.next_boot()
    done = rig.agent(source="").run()
    assert done["result"] == "installed" and done["version"] == version, done
    return str(done["slot"])


def test_flashed_layout_is_understood(rig: RpiRig) -> None:
    assert partition_numbers({"a": "/dev/mmcblk0p2", "b": "/dev/mmcblk0p3"}) == {"a": 2, "b": 3}
    assert partition_numbers({"a": "/dev/sda5", "b": "/dev/sda6"}) == {"a": 5, "b": 6}
    assert partition_numbers({"a": "/tmp/x", "b": "/tmp/y"}) == {"a": 2, "b": 3}
    assert rig.autoboot() == {"all": 2, "tryboot": 3}
    assert parse_autoboot(autoboot_txt(3, 2)) == {"all": 3, "tryboot": 2}
    with pytest.raises(ConfigError):
        parse_autoboot("[tryboot]\nboot_partition=3\n")
    agent = rig.agent()
    assert agent.boot.boot()["slot"] == "a"
    # The flash tool's /etc/mamori/release.json in slot A names the running version.
    assert agent.current_version() == rig.flashed_version


def test_install_writes_slot_tryboots_and_commits(rig: RpiRig) -> None:
    rig.publish("1.0")
    slot_a_before = sha_file(rig.slot("a"))
    slot = _install_and_commit(rig, "1.0")
    assert slot == "b"
    assert sha_file(rig.slot("a")) == slot_a_before, "the running slot was written"
    # Slot B is an ext4 image laid out like the flash tool's slot A.
    rel = json.loads(debugfs_cat(rig.slot("b"), "/etc/mamori/release.json"))
    assert rel["version"] == "1.0" and rel["board"] == "rpi4" and rel["slot"] == "B"
    assert "1.0" in debugfs_cat(rig.slot("b"), "/opt/mamori/main.py")
    assert "mamori-1.0" in debugfs_cat(rig.slot("b"), "/etc/hostname")
    assert "root=LABEL" in debugfs_cat(rig.slot("b"), "/boot/cmdline.txt")
    # Commit rewrote autoboot.txt: slot B (partition 3) boots by default now.
    assert rig.autoboot() == {"all": 3, "tryboot": 2}
    assert (rig.boot_dir / "autoboot.txt").read_text() == autoboot_txt(3, 2)
    assert not (rig.boot_dir / "autoboot.tmp").exists()
    st = status(rig.env.state, rig.board)
    assert st["version"] == "1.0" and st["slot"] == "b"
    assert st["history"][-1]["action"] == "installed"
    # A normal reboot keeps running 1.0 from slot B; nothing to do.
    rig.firmware_boot(tryboot=False)
    res = rig.agent().run()
    assert res["result"] == "current" and res["slot"] == "b"


def test_failing_health_rolls_back_to_the_committed_slot(rig: RpiRig) -> None:
    rig.publish("1.0")
    _install_and_commit(rig, "1.0")
    rig.publish("1.1", health_rc=1)
    assert rig.agent().run()["result"] == "rebooting"
    assert rig.autoboot() == {"all": 3, "tryboot": 2}  # the trial is slot A, once
    rig.next_boot()
    res = rig.agent(source="").run()
    assert res["result"] == "rolling_back" and "health check" in res["reason"]
    assert rig.requests[-1] == ""  # a normal reboot, not another tryboot
    assert rig.autoboot()["all"] == 3
    rig.next_boot()
    res = rig.agent(source="").run()
    assert res["result"] == "rolled_back" and res["version"] == "1.0" and res["slot"] == "b"
    report = json.loads((rig.env.state / "update" / "reports.jsonl").read_text().splitlines()[-1])
    assert report["kind"] == "ota.rollback" and report["target"] == "1.1"
    assert status(rig.env.state, rig.board)["version"] == "1.0"


def test_trial_image_that_never_comes_up_is_abandoned(rig: RpiRig) -> None:
    rig.publish("1.0")
    assert rig.agent().run()["result"] == "rebooting"
    for _ in range(2):  # the trial boot crashes: the firmware falls back to [all] = slot A
        rig.firmware_boot(tryboot=False)
        res = rig.agent(source="").run()
        assert res["result"] == "rebooting" and rig.requests[-1] == "0 tryboot"
    rig.firmware_boot(tryboot=False)
    res = rig.agent(source="").run()
    assert res["result"] == "rolled_back" and "attempts exhausted" in res["reason"]
    assert rig.autoboot()["all"] == 2
    with pytest.raises(Exception, match="already failed its trial boot"):
        rig.agent().run()


def test_corrupted_slot_write_is_caught_by_read_back(rig: RpiRig, monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    rig.publish("1.0")
    real_copy = BlockSlots._copy

    def bad_copy(image, dev, size):  # type: ignore[no-untyped-def]
        digest = real_copy(image, dev, size)
        with open(dev, "r+b") as f:  # the medium flips a bit after the write
            f.seek(4096)
            b = f.read(1)
            f.seek(4096)
            f.write(bytes([b[0] ^ 1]))
        return digest
    monkeypatch.setattr(BlockSlots, "_copy", staticmethod(bad_copy))
    with pytest.raises(IntegrityError, match="read back differs"):
        rig.agent().run()
    assert rig.autoboot() == {"all": 2, "tryboot": 3} and rig.requests == []
    record = rig.agent().record()  # refused and recorded; the staging area is discarded
    assert record["state"] == "refused" and "read back differs" in record["reason"]
    monkeypatch.setattr(BlockSlots, "_copy", staticmethod(real_copy))
    assert rig.agent().run()["result"] == "rebooting"  # checked afresh, downloaded, rewritten


def test_refuses_to_write_a_mounted_slot(rig: RpiRig, tmp_path_factory: pytest.TempPathFactory
                                         ) -> None:
    rig.publish("1.0")
    mounts = tmp_path_factory.mktemp("m") / "mounts"
    mounts.write_text("%s / ext4 ro 0 0\n" % rig.slot("b"))
    agent = rig.agent()
    agent.slots = BlockSlots(Paths(rig.env.state, rig.board), rig.board, str(mounts))
    before = sha_file(rig.slot("b"))
    with pytest.raises(StateError, match="mounted"):
        agent.run()
    assert sha_file(rig.slot("b")) == before


def test_loop_device_slots(env: Env, flashed: tuple[Path, dict[str, Any]]) -> None:
    require("losetup")
    rig = RpiRig(env, loop=True, flashed=flashed)
    try:
        rig.publish("1.0")
        p2, p3 = rig.parts["slot-a"], rig.parts["slot-b"]
        a_before = sha_file(rig.image, p2["start"], p2["bytes"])
        assert _install_and_commit(rig, "1.0") == "b"
        assert sha_file(rig.image, p2["start"], p2["bytes"]) == a_before
        assert sha_file(rig.image, p3["start"], p3["bytes"]) == sha_file(rig.slot("b"))
        rel = json.loads(debugfs_cat(rig.slot("b"), "/etc/mamori/release.json"))
        assert rel["version"] == "1.0"
        assert rig.autoboot() == {"all": 3, "tryboot": 2}
    finally:
        rig.close()


CUTS = 10


@pytest.mark.slow
def test_power_cuts_on_block_slots(rig: RpiRig) -> None:
    """SIGKILL the agent at random trace points; the partition the firmware boots is always a
    complete image (the flashed slot A, or a slot whose read-back matches its record)."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from firmware.core.update import machine
    from firmware.gateway.update.store import read_json
    from tests.conftest import ROOT

    rng = random.Random(int(os.environ.get("MAMORI_CUT_SEED", "0")) or time.time_ns())
    env = rig.env
    rig.agent(source="")  # trust the first root
    original_a = sha_file(rig.slot("a"))
    log = env.tmp / "reboots.log"
    log.touch()
    cfg = json.dumps({"board": rig.board.to_dict(), "state": str(env.state),
                      "boot_dir": str(rig.boot_dir), "dt": str(rig.dt), "source": env.url,
                      "reboot_log": str(log)})
    slots = BlockSlots(Paths(env.state, rig.board), rig.board)
    n, cuts, finished, seen = 0, 0, 0, 0
    hit: set[str] = set()
    rig.publish("1.0")
    runs = 0
    while (cuts < CUTS or finished < 2) and runs < 60:
        runs += 1
        proc = subprocess.Popen([sys.executable, "-m", "tests.ota.rpi_driver", cfg], cwd=ROOT,
                                env=dict(os.environ, MAMORI_OTA_TRACE="1"),
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        for line in proc.stderr:
            if cuts < CUTS and line.startswith("mamori-ota-trace ") and rng.random() < 0.2:
                proc.send_signal(signal.SIGKILL)
                hit.add(line.split()[1])
                break
        proc.wait(timeout=120)
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            cuts += 1
        requests = [json.loads(x) for x in log.read_text().splitlines()]
        tryboot = len(requests) > seen and requests[-1] == "0 tryboot"
        seen = len(requests)
        part = rig.firmware_boot(tryboot)  # a power cut is a normal boot
        booted = "a" if part == 2 else "b"
        if read_json(slots.record_path(booted), None) is None:
            assert booted == "a" and sha_file(rig.slot("a")) == original_a, \
                "the firmware would boot an incomplete slot"
        else:
            slots.verify(booted)
        record = read_json(env.state / "update" / "state.json", {})
        if record.get("state") in machine.TERMINAL and (record.get("target") or {}).get(
                "version") == "1.%d" % n:
            finished += 1
            n += 1
            rig.publish("1.%d" % n, health_rc=1 if n % 3 == 2 else None)
    assert cuts >= CUTS and finished >= 2, (cuts, finished, runs)
    assert len(hit) >= 4, hit
