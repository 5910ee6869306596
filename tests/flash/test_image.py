"""Linux board images: built, written to an image file or a loop device, read back, verified."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from host_tools.flash import image
from host_tools.flash.errors import TargetError, VerifyError
from tests.conftest import require, require_image_tools
from tests.flash.conftest import DEV, mamori


@pytest.fixture(autouse=True)
def _image_tools() -> None:
    require_image_tools()


def _part(img: Path, desc: dict, number: int, dest: Path) -> Path:
    p = desc["partitions"][number - 1]
    with open(img, "rb") as f:
        f.seek(p["start"])
        dest.write_bytes(f.read(p["bytes"]))
    return dest


def _ext4_cat(part: Path, path: str) -> str:
    out = subprocess.run(["debugfs", "-R", "cat " + path, str(part)], capture_output=True,
                         text=True)
    return out.stdout


def _ext4_stat(part: Path, path: str) -> str:
    return subprocess.run(["debugfs", "-R", "stat " + path, str(part)], capture_output=True,
                          text=True).stdout


def test_image_file_is_built_written_and_verified(env: dict[str, str], tmp_path: Path) -> None:
    bundle = tmp_path / "gw.bundle"
    bundle.write_bytes(os.urandom(2048))
    site = tmp_path / "site"
    site.mkdir()
    out = tmp_path / "rpi4.img"
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", str(out), "--bundle",
               str(bundle), "--site", str(site), "--json")
    assert p.returncode == 0, p.stderr
    desc = json.loads(p.stdout)
    assert desc["verified"] and desc["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert "100%" in p.stderr  # the progress bar reached the end
    roles = [x["role"] for x in desc["partitions"]]
    assert roles == ["boot", "slot-a", "slot-b", "data"]
    raw = out.read_bytes()
    assert raw[510:512] == b"\x55\xaa" and raw[446 + 4] == 0x0E and raw[446 + 16 + 4] == 0x83
    # Boot partition: no serial console, A/B tryboot selection.
    boot_off = desc["partitions"][0]["start"]
    cmdline = subprocess.run(["mtype", "-i", "%s@@%d" % (out, boot_off), "::cmdline.txt"],
                             capture_output=True, text=True).stdout
    assert "console=serial" not in cmdline and "console=tty1" in cmdline
    assert "root=PARTUUID=%s-02" % desc["disk_id"] in cmdline
    autoboot = subprocess.run(["mtype", "-i", "%s@@%d" % (out, boot_off), "::autoboot.txt"],
                              capture_output=True, text=True).stdout
    assert "tryboot_a_b=1" in autoboot and "boot_partition=2" in autoboot
    # Slot A: firmware, sandboxed unit, masked serial getty, no account files.
    a = _part(out, desc, 2, tmp_path / "a.img")
    unit = _ext4_cat(a, "/etc/systemd/system/mamori-gateway.service")
    for need in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                 "CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW", "User=mamori"):
        assert need in unit
    getty = _ext4_stat(a, "/etc/systemd/system/serial-getty@ttyS0.service")
    assert 'Fast link dest: "/dev/null"' in getty
    assert "frames.py" in subprocess.run(["debugfs", "-R", "ls /opt/mamori/firmware/core",
                                          str(a)], capture_output=True, text=True).stdout
    assert "File not found" in _ext4_stat(a, "/etc/shadow") + \
        subprocess.run(["debugfs", "-R", "stat /etc/shadow", str(a)], capture_output=True,
                       text=True).stderr
    assert "nologin" in _ext4_cat(a, "/usr/lib/sysusers.d/mamori.conf")
    # The self-contained slot: every locked wheel unpacked, listed in --json and in the slot.
    names = {w["name"]: w for w in desc["dependencies"]}
    assert {"cryptography", "paho-mqtt", "tuf", "zigpy", "bleak"} <= set(names)
    assert all(len(w["sha256"]) == 64 and w["version"] for w in names.values())
    assert desc["base_os_requires"] == load_board("rpi4").to_dict()["base_os_requires"]
    slot_deps = json.loads(_ext4_cat(a, "/opt/mamori/dependencies.json"))
    assert slot_deps["wheels"] == desc["dependencies"] and slot_deps["arch"] == "aarch64"
    listing = subprocess.run(["debugfs", "-R", "ls /opt/mamori/site-packages", str(a)],
                             capture_output=True, text=True).stdout
    assert "cryptography" in listing and "zigpy" in listing and "pytest" not in listing
    assert "Type=notify" in unit and "--lan-host wlan0" in unit
    assert "chgrp mamori" in _ext4_cat(a, "/etc/udev/rules.d/70-mamori.rules")
    # Data partition: the bundle, byte for byte; slot table.
    d = _part(out, desc, 4, tmp_path / "d.img")
    got = subprocess.run(["debugfs", "-R", "dump /installation.bundle " + str(tmp_path / "b"),
                          str(d)], capture_output=True)
    assert got.returncode == 0 and (tmp_path / "b").read_bytes() == bundle.read_bytes()
    assert json.loads(_ext4_cat(d, "/slots.json"))["slots"] == {"A": "/dev/mmcblk0p2",
                                                                "B": "/dev/mmcblk0p3"}
    row = json.loads((site / "flash-inventory.jsonl").read_text())
    assert row["image_sha256"] == desc["sha256"] and row["operator"] == "line-7"
    assert row["bundle_sha256"] == hashlib.sha256(bundle.read_bytes()).hexdigest()
    # The same image verifies; one flipped byte afterwards is detected.
    ok = mamori(env, "flash", "verify", "--board", "rpi4", "--image", str(out), "--sha256",
                desc["sha256"])
    assert ok.returncode == 0, ok.stderr
    with open(out, "r+b") as f:
        f.seek(desc["partitions"][1]["start"] + 5000)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x01]))
    bad = mamori(env, "flash", "verify", "--board", "rpi4", "--image", str(out), "--sha256",
                 desc["sha256"])
    assert bad.returncode == 5 and "verification mismatch" in bad.stderr


def test_a_corrupted_write_is_detected(env: dict[str, str], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = image._write_blocks

    def flaky(dst: int, src: Path, total: int, progress: object) -> None:
        real(dst, src, total, None)
        os.pwrite(dst, b"\xff", 3 * image.MIB + 17)  # the medium flips a byte

    monkeypatch.setattr(image, "_write_blocks", flaky)
    with pytest.raises(VerifyError, match="verification mismatch"):
        image.flash_image(load_board("rpi4"), str(tmp_path / "x.img"))


@pytest.fixture
def loopdev(tmp_path: Path) -> Iterator[str]:
    """A loop-back block device over an image file (needs root)."""
    require("losetup")  # visible skip on a user's machine without it, a failure in CI
    backing = tmp_path / "disk.img"
    with open(backing, "wb") as f:
        f.truncate(256 * image.MIB)  # sparse: room for the self-contained slots
    p = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.fail("losetup could not attach a loop device: " + p.stderr.strip())
    dev = p.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)


def test_loop_device_written_and_verified(env: dict[str, str], loopdev: str) -> None:
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", loopdev, "--quiet")
    assert p.returncode == 6 and "without --yes" in p.stderr
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", loopdev, "--yes", "--json",
               "--quiet")
    assert p.returncode == 0, p.stderr
    desc = json.loads(p.stdout)
    assert desc["kind"] == "device" and desc["verified"]
    ok = mamori(env, "flash", "verify", "--board", "rpi4", "--image", loopdev, "--sha256",
                desc["sha256"], "--bytes", str(desc["bytes"]))
    assert ok.returncode == 0, ok.stderr
    with open(loopdev, "r+b") as f:
        f.seek(desc["bytes"] - 100)
        f.write(b"\x00\x01")
    bad = mamori(env, "flash", "verify", "--board", "rpi4", "--image", loopdev, "--sha256",
                 desc["sha256"], "--bytes", str(desc["bytes"]))
    assert bad.returncode == 5


def test_refuses_mounted_device_and_host_disk(tmp_path: Path, loopdev: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("%s /mnt/card ext4 rw 0 0\n" % loopdev)
    with pytest.raises(TargetError, match="is in use"):
        image.check_destination(loopdev, str(mounts))
    mounts.write_text("/dev/other / ext4 rw 0 0\n")
    assert image.check_destination(loopdev, str(mounts)) == "device"
    monkeypatch.setattr(image, "_host_disks", lambda: {loopdev})
    with pytest.raises(TargetError, match="own disk"):
        image.check_destination(loopdev, str(mounts))
    before = hashlib.sha256(Path(loopdev).read_bytes()).hexdigest()
    with pytest.raises(TargetError, match="own disk"):
        image.flash_image(load_board("rpi4"), loopdev, assume_yes=True,
                          mounts_file=str(mounts))
    assert hashlib.sha256(Path(loopdev).read_bytes()).hexdigest() == before


def test_wrong_board_and_bad_destinations(env: dict[str, str], tmp_path: Path) -> None:
    p = mamori(env, "flash", "image", DEV, "--board", "pico-w", "--out", str(tmp_path / "x.img"))
    assert p.returncode == 2 and "flash deploy" in p.stderr
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", "/dev/null")
    assert p.returncode == 6 and "neither a regular file nor a block device" in p.stderr
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", str(tmp_path / "no/x.img"))
    assert p.returncode == 6 and "does not exist" in p.stderr
    p = mamori(env, "flash", "image", DEV, "--board", "rpi4", "--out", str(tmp_path / "x.img"),
               "--size-mib", "10")
    assert p.returncode == 6 and "too small" in p.stderr
    assert not (tmp_path / "x.img").exists()


def test_audit_catches_a_serial_console(tmp_path: Path) -> None:
    board = load_board("rpi4")
    boot, root = tmp_path / "boot", tmp_path / "root"
    boot.mkdir()
    root.mkdir()
    image.boot_tree(board, boot, 1)
    image.root_tree(board, root, "1.0", None)
    assert image.audit_tree(boot, root) == []
    (boot / "cmdline.txt").write_text("console=serial0,115200 root=/dev/mmcblk0p2\n")
    (root / "etc/systemd/system/serial-getty@ttyS0.service").unlink()
    (boot / "userconf.txt").write_text("pi:$6$hash\n")
    bad = image.audit_tree(boot, root)
    assert len(bad) == 3
