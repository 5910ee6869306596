"""Block-device A/B slots (Raspberry Pi class boards): the bundle becomes an ext4 slot image.

Layout, compatible with `mamori flash image` (host_tools/flash/image.py): each slot partition
holds an ext4 filesystem (label ``mamori_a``/``mamori_b``, same mkfs options) with the bundle's
``os/`` tree at its root, ``app/`` under ``/opt/mamori`` and ``boot/`` under ``/boot``, plus
``/etc/mamori/release.json`` naming board, version, slot and bundle hash (as the flash tool writes
for slot A). Writing: the slot's record is removed first, the image is built in the state dir,
copied to the partition, fsynced, read back (page cache dropped) and compared by SHA-256; only
then is the slot's record written. A power cut anywhere leaves the slot without a record, so the
agent rewrites it; the running slot is never opened for writing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError, IntegrityError, StateError
from firmware.gateway.update.slots import write_slot
from firmware.gateway.update.store import Paths, fsync_dir, read_json, write_json

BLOCK = 1024 * 1024
LABELS = {"a": "mamori_a", "b": "mamori_b"}
# Same filesystem options as host_tools/flash/image.py::_ext4 (the flashed slot A).
MKFS = ["mkfs.ext4", "-q", "-F", "-O", "^has_journal,^metadata_csum_seed", "-E",
        "root_owner=0:0"]
PLACES = {"os": "", "app": "opt/mamori", "boot": "boot"}
_PART = re.compile(r"^/dev/(?:mmcblk\d+p|nvme\d+n\d+p|sd[a-z]+|vd[a-z]+)(\d+)$")


def trace(step: str) -> None:
    """Power-cut test hook (same protocol as the agent's trace)."""
    if os.environ.get("MAMORI_OTA_TRACE"):
        sys.stderr.write("mamori-ota-trace %s\n" % step)
        sys.stderr.flush()


def partition_numbers(slot_paths: dict[str, str]) -> dict[str, int]:
    """Partition numbers of the slots (boot_partition in autoboot.txt); flash layout: 2 and 3."""
    out: dict[str, int] = {}
    for name, path in slot_paths.items():
        m = _PART.match(str(path))
        if m is None:
            return {"a": 2, "b": 3}
        out[name] = int(m.group(1))
    if len(set(out.values())) != 2:
        raise ConfigError("the two slots must be different partitions", "storage.slots")
    return out


def device_size(path: Path) -> int:
    """Size in bytes of a partition (block device) or of a file standing in for one."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError("cannot open slot %s: %s" % (path, exc.strerror), "storage.slots",
                          hint="the update agent needs write access to the slot partitions")
    try:
        return os.lseek(fd, 0, os.SEEK_END)
    finally:
        os.close(fd)


def mounted(path: Path, mounts_file: str = "/proc/self/mounts") -> bool:
    """True when the partition is mounted (then it is running or in use: never written)."""
    real = os.path.realpath(path)
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return False
    return any(ln.split()[0:1] and os.path.realpath(ln.split()[0]) == real
               for ln in lines if ln.startswith("/"))


def sha256_prefix(path: Path, length: int) -> str:
    """SHA-256 of the first `length` bytes, re-read from the medium (page cache dropped)."""
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        left = length
        while left > 0:
            block = os.read(fd, min(BLOCK, left))
            if not block:
                raise IntegrityError("slot %s is shorter than its image" % path)
            h.update(block)
            left -= len(block)
    finally:
        os.close(fd)
    return h.hexdigest()


def _rootfs_tree(extracted: Path, dest: Path, board: str, slot: str, version: str,
                 bundle_sha: str) -> None:
    """Lay the verified payload out the way the flash tool lays out a slot filesystem."""
    payload = extracted / "payload"
    for top, place in PLACES.items():
        src = payload / top
        if src.is_dir():
            shutil.copytree(src, dest / place if place else dest, dirs_exist_ok=True,
                            copy_function=shutil.copy2)
    rel = dest / "etc" / "mamori" / "release.json"
    rel.parent.mkdir(parents=True, exist_ok=True)
    rel.write_text(json.dumps({"board": board, "version": version, "slot": slot.upper(),
                               "bundle_sha256": bundle_sha}, sort_keys=True, indent=1) + "\n")


def _run(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise StateError("%s is not installed" % cmd[0], "apt-get install e2fsprogs")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise StateError("%s failed: %s" % (cmd[0], proc.stderr.strip()[-300:]))


class BlockSlots:
    """Slots that are partitions (or files standing in for partitions)."""

    def __init__(self, paths: Paths, board: Board,
                 mounts_file: str = "/proc/self/mounts") -> None:
        self.paths = paths
        self.board = board
        self.mounts_file = mounts_file

    def record_path(self, name: str) -> Path:
        """Where the agent keeps what slot `name` holds (written only after read-back)."""
        return self.paths.root / ("slot-%s.json" % name)

    def info(self, name: str) -> dict[str, Any] | None:
        """The slot's record, the flashed image's release.json, or None when unknown."""
        rec: dict[str, Any] | None = read_json(self.record_path(name), None)
        if rec is not None:
            return rec
        return self._flashed_release(name)

    def _flashed_release(self, name: str) -> dict[str, Any] | None:
        """Slot A as written by `mamori flash image`: read /etc/mamori/release.json (debugfs)."""
        if shutil.which("debugfs") is None:
            return None
        try:
            proc = subprocess.run(["debugfs", "-R", "cat /etc/mamori/release.json",
                                   str(self.paths.slot(name))], capture_output=True,
                                  text=True, timeout=30)
            doc = json.loads(proc.stdout)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return None
        if not isinstance(doc, dict) or doc.get("board") != self.board.name:
            return None
        return {"version": str(doc.get("version", "")), "board": doc["board"], "flashed": True}

    def write(self, name: str, bundle: Path, target: dict[str, Any]) -> dict[str, Any]:
        """Build the slot image from the verified bundle, write, fsync, read back, record."""
        dev = self.paths.slot(name)
        if mounted(dev, self.mounts_file):
            raise StateError("slot %s (%s) is mounted: refusing to write it" % (name, dev),
                             "the inactive slot must not be in use")
        rec_path = self.record_path(name)
        if rec_path.exists():
            rec_path.unlink()
            fsync_dir(rec_path.parent)
        trace("slot-invalidated")
        work = self.paths.root / "staging" / "slot"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        try:
            write_slot(bundle, work / "extracted", target, self.board.name)
            tree = work / "tree"
            tree.mkdir()
            _rootfs_tree(work / "extracted", tree, self.board.name, name,
                         target["version"], target["sha256"])
            size = device_size(dev)
            image = work / "slot.img"
            with open(image, "wb") as f:
                f.truncate(size)
            _run(MKFS + ["-L", LABELS[name], "-d", str(tree), str(image)])
            trace("image-built")
            digest = self._copy(image, dev, size)
            trace("slot-copied")
            if sha256_prefix(dev, size) != digest:
                raise IntegrityError("slot %s read back differs from the image written" % name,
                                     "the medium is failing; the slot stays unusable")
            trace("slot-read-back")
            health = ""
            manifest = json.loads((work / "extracted" / "manifest.json").read_text())
            if manifest.get("health"):
                hp = self.paths.root / ("slot-%s.health.py" % name)
                shutil.copyfile(work / "extracted" / "payload" / manifest["health"], hp)
                health = hp.name
            record = {"version": target["version"], "board": self.board.name,
                      "target": target, "image_sha256": digest, "image_bytes": size,
                      "device": str(dev), "health": health}
            write_json(rec_path, record)
            return record
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def discard(self, name: str) -> None:
        """Drop half-built slot work (the partition itself stays without a record)."""
        shutil.rmtree(self.paths.root / "staging" / "slot", ignore_errors=True)

    @staticmethod
    def _copy(image: Path, dev: Path, size: int) -> str:
        h = hashlib.sha256()
        fd = os.open(dev, os.O_WRONLY)  # never O_TRUNC: a file may stand in for a partition
        try:
            with open(image, "rb") as src:
                while True:
                    block = src.read(BLOCK)
                    if not block:
                        break
                    h.update(block)
                    view = memoryview(block)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        return h.hexdigest()

    def verify(self, name: str) -> dict[str, Any]:
        """Raise unless the slot holds, byte for byte, the image recorded for it."""
        rec = read_json(self.record_path(name), None)
        if rec is None:
            raise IntegrityError("slot %s holds no complete image" % name)
        if sha256_prefix(self.paths.slot(name), int(rec["image_bytes"])) != rec["image_sha256"]:
            raise IntegrityError("slot %s does not match the image written to it" % name)
        return dict(rec)

    def health(self, name: str) -> tuple[bool, str]:
        """Trial-boot health: the slot image intact, then the release's health check exits 0."""
        try:
            rec = self.verify(name)
        except IntegrityError as exc:
            return False, str(exc)
        if not rec.get("health"):
            return True, "image intact"
        script = self.paths.root / rec["health"]
        try:
            proc = subprocess.run([sys.executable, str(script)], capture_output=True,
                                  text=True, timeout=60, cwd=self.paths.root)
        except subprocess.TimeoutExpired:
            return False, "health check timed out"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or [""])[-1][:200]
            return False, "health check exited %d %s" % (proc.returncode, last)
        return True, "health check passed"


class DirSlots:
    """The `sim` board's slots: directories under the state dir (see slots.py)."""

    def __init__(self, paths: Paths, board: Board) -> None:
        self.paths = paths
        self.board = board

    def info(self, name: str) -> dict[str, Any] | None:
        """The slot's record or None."""
        from firmware.gateway.update.slots import slot_info

        return slot_info(self.paths.slot(name))

    def write(self, name: str, bundle: Path, target: dict[str, Any]) -> dict[str, Any]:
        """Extract the verified bundle into the slot directory (temp dir + rename)."""
        return write_slot(bundle, self.paths.slot(name), target, self.board.name)

    def discard(self, name: str) -> None:
        """Drop a half-extracted slot (its temp directory; the slot itself is untouched)."""
        from firmware.gateway.update.slots import slot_work

        shutil.rmtree(slot_work(self.paths.slot(name)), ignore_errors=True)


def slot_store(paths: Paths, board: Board) -> BlockSlots | DirSlots:
    """The slot backend of a board: block devices for tryboot boards, directories on sim."""
    boot = board.storage.boot
    if boot == "tryboot":
        return BlockSlots(paths, board)
    if boot == "slot-dir":
        return DirSlots(paths, board)
    raise ConfigError("board %s has no A/B update mechanism (%s)" % (board.name, boot),
                      "storage.boot")
