"""Raspberry Pi rig for OTA tests: a `mamori flash image --board rpi4` disk, its slots as loop
devices (root) or as plain files standing in for the partitions, the boot partition's files in a
directory, and a fake firmware that boots what autoboot.txt says (tryboot one-shot included).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.common.boards import load_board
from firmware.gateway.update.agent import UpdateAgent
from firmware.gateway.update.boot import TrybootBoot, parse_autoboot
from firmware.gateway.update.store import Paths
from host_tools.release import appslot
from tests.conftest import ROOT
from tests.ota.helpers import CHUNK, Env

MIB = 1 << 20


def rpi_payload(base: Path, tag: str, health_rc: int | None = None) -> Path:
    """An rpi4 bundle payload: application, OS overlay and boot files."""
    p = base / ("rpi-payload-" + tag)
    for d in ("app/firmware", "os/etc", "boot"):
        (p / d).mkdir(parents=True, exist_ok=True)
    (p / "app" / "main.py").write_text("VERSION = %r\n" % tag)
    (p / "app" / "firmware" / "__init__.py").write_text("")
    # The dependency record of a board payload, with no wheels: these tests move bytes, not code.
    (p / "app" / appslot.SITE).mkdir(parents=True, exist_ok=True)
    (p / "app" / appslot.DEPS_FILE).write_text(json.dumps(
        {"format": appslot.DEPS_FORMAT, "arch": "aarch64", "python": "3.11", "wheels": []}))
    (p / "os" / "etc" / "hostname").write_text("mamori-%s\n" % tag)
    (p / "boot" / "cmdline.txt").write_text("console=tty1 root=LABEL=slot ro quiet\n")
    if health_rc is not None:
        (p / "app" / "healthcheck.py").write_text("import sys\nsys.exit(%d)\n" % health_rc)
    return p


def sha_file(path: Path, offset: int = 0, length: int | None = None) -> str:
    """SHA-256 of a byte range of a file or device."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(offset)
        left = length if length is not None else 1 << 62
        while left > 0:
            block = f.read(min(MIB, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def debugfs_cat(dev: Path, path: str) -> str:
    """A file's content inside an ext4 slot (read without mounting)."""
    return subprocess.run(["debugfs", "-R", "cat " + path, str(dev)], capture_output=True,
                          text=True, check=True).stdout


def flash_image(out: Path) -> dict[str, Any]:
    """`mamori flash image --board rpi4 --json` of the local tree into OUT; its JSON result."""
    r = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "flash", "image",
                        "--board", "rpi4", "--out", str(out), "--json", "--unsigned-dev-build"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dict(json.loads(r.stdout))


class RpiRig:
    """An rpi4 gateway whose slots are partitions of a flashed image (or stand-in files)."""

    def __init__(self, env: Env, loop: bool = False,
                 flashed: tuple[Path, dict[str, Any]] | None = None) -> None:
        """FLASHED: an image `flash_image` made (and its result), copied instead of flashing
        anew (the rig writes to its copy)."""
        self.env = env
        tmp = env.tmp
        self.image = tmp / "rpi4.img"
        if flashed is None:
            result = flash_image(self.image)
        else:
            shutil.copyfile(flashed[0], self.image)
            result = flashed[1]
        self.flashed_version = str(result["version"])
        self.parts = {p["role"]: p for p in result["partitions"]}
        self.loops: list[str] = []
        self.boot_dir = tmp / "bootfs"
        self.boot_dir.mkdir()
        boot = self.parts["boot"]
        for name in ("autoboot.txt", "cmdline.txt", "config.txt"):
            subprocess.run(["mcopy", "-n", "-i", "%s@@%d" % (self.image, boot["start"]),
                            "::/" + name, str(self.boot_dir / name)], check=True)
        slots = []
        for role in ("slot-a", "slot-b"):
            p = self.parts[role]
            if loop:
                dev = subprocess.run(["losetup", "-f", "--show", "-o", str(p["start"]),
                                      "--sizelimit", str(p["bytes"]), str(self.image)],
                                     capture_output=True, text=True, check=True).stdout.strip()
                self.loops.append(dev)
                slots.append(dev)
            else:
                f = tmp / ("p%d.img" % p["number"])
                with open(self.image, "rb") as src, open(f, "wb") as dst:
                    src.seek(p["start"])
                    dst.write(src.read(p["bytes"]))
                slots.append(str(f))
        rpi4 = load_board("rpi4")
        self.board: Board = rpi4.with_changes(storage=dict(rpi4.to_dict()["storage"],
                                                           slots=slots))
        self.dt = tmp / "dt"
        self.dt.mkdir()
        self.requests: list[str] = []
        self.firmware_boot(tryboot=False)

    def slot(self, name: str) -> Path:
        """The partition (or stand-in file) of slot a or b."""
        return Path(self.board.storage.slots[0 if name == "a" else 1])

    def firmware_boot(self, tryboot: bool) -> int:
        """What the Pi firmware does at power-on: pick the partition from autoboot.txt."""
        sections = parse_autoboot((self.boot_dir / "autoboot.txt").read_text())
        part = sections["tryboot"] if tryboot else sections["all"]
        (self.dt / "partition").write_bytes(struct.pack(">I", part))
        (self.dt / "tryboot").write_bytes(struct.pack(">I", 1 if tryboot else 0))
        return part

    def reboot_seam(self, arg: str) -> None:
        """The narrowest fake: record the request (the test boots the firmware next)."""
        self.requests.append(arg)

    def next_boot(self) -> None:
        """Boot as the last reboot request asks (tryboot only when requested)."""
        self.firmware_boot(tryboot=bool(self.requests) and self.requests[-1] == "0 tryboot")

    def boot_seam(self) -> TrybootBoot:
        """The agent's boot seam with the fake reboot and device tree."""
        return TrybootBoot(Paths(self.env.state, self.board), self.boot_dir,
                           reboot=self.reboot_seam, dt_dir=self.dt)

    def agent(self, source: str | None = None, **kw: Any) -> UpdateAgent:
        """An agent for this board trusting the repository's first root."""
        a = UpdateAgent(self.env.state, self.board,
                        self.env.url if source is None else source, boot=self.boot_seam(), **kw)
        a.trust_root(self.env.repo.trusted_root())
        return a

    def publish(self, version: str, health_rc: int | None = None) -> dict[str, Any]:
        """Publish an rpi4 release."""
        payload = rpi_payload(self.env.tmp, version, health_rc)
        return self.env.repo.publish("rpi4", version, payload, chunk_size=CHUNK)

    def autoboot(self) -> dict[str, int]:
        """The parsed autoboot.txt."""
        return parse_autoboot((self.boot_dir / "autoboot.txt").read_text())

    def close(self) -> None:
        """Detach loop devices."""
        for dev in self.loops:
            subprocess.run(["losetup", "-d", dev], check=False)
        self.loops = []
        shutil.rmtree(self.env.tmp / "bootfs", ignore_errors=True)
