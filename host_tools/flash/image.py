"""Linux board images: build the Mamori root overlay with A/B slots, write it, read it back.

Disk layout (MBR, matching the board profile's ``storage.slots`` p2/p3 and ``boot = tryboot``):
p1 boot (FAT: config.txt, cmdline.txt without a serial console, autoboot.txt selecting slot A
with slot B as the tryboot partition), p2 slot A (ext4: the gateway firmware under
/opt/mamori, its sandboxed systemd unit, serial getty masked, no accounts or passwords),
p3 slot B (empty ext4 for the update agent), p4 data (ext4 mounted at the state dir: the
installation bundle and slots.json). The image is a root *overlay*: slot A carries Mamori's
files, to be layered on the vendor's base OS image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.common.boardprofile import Board
from firmware.common.fsutil import complete_or_absent
from firmware.common.version import software_version
from host_tools.flash import unit as unit_mod
from host_tools.flash.errors import TargetError, VerifyError, WrongBoardError
from host_tools.flash.payload import BUNDLE_NAME, ROOT
from host_tools.release import appslot

if TYPE_CHECKING:
    from host_tools.flash.source import FirmwareSource

MIB = 1 << 20
DEFAULT_SIZE_MIB = 0  # 0: as small as the slot's content allows (rounded up to 16 MiB)
BOOT_MIB = 16
DATA_MIB = 4
MIN_SLOT_MIB = 8
BLOCK = MIB
SERIAL_GETTYS = ("ttyS0", "ttyAMA0", "serial0", "ttyGS0")
UNIT_NAME = unit_mod.UNIT_NAME
Progress = Callable[[int, int], None]

def linux_board(board: Board) -> None:
    """Refuse a board that does not run Linux/CPython."""
    if board.runtime != "cpython":
        raise WrongBoardError(
            "board %s runs %s: it takes a deploy, not an image" % (board.name,
                                                                    board.runtime),
            hint="use `mamori flash deploy --board %s --port PORT`" % board.name)
    if board.storage.boot == "none" or not board.has_ab_slots:
        raise WrongBoardError("board %s has no A/B slots to flash" % board.name,
                              hint="pick a Raspberry Pi class board profile")


def disk_id(board: Board, version: str) -> int:
    """MBR disk identifier (PARTUUID prefix), derived from board and version: reproducible."""
    return struct.unpack(">I", hashlib.sha256(
        ("mamori:%s:%s" % (board.name, version)).encode()).digest()[:4])[0] or 1


def _write(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)


def boot_tree(board: Board, dest: Path, ident: int) -> None:
    """Boot partition: no serial console on the kernel command line, tryboot A/B selection."""
    part = "%08x" % ident
    _write(dest / "cmdline.txt", "console=tty1 root=PARTUUID=%s-02 rootfstype=ext4 ro rootwait "
                                 "fsck.repair=yes quiet\n" % part)
    _write(dest / "config.txt", "# Mamori %s\narm_64bit=1\nenable_uart=0\n"
                                "dtoverlay=disable-bt-uart-console\n" % board.name)
    # Raspberry Pi firmware A/B: boot slot A; `reboot '0 tryboot'` tries slot B once.
    _write(dest / "autoboot.txt", "[all]\ntryboot_a_b=1\nboot_partition=2\n"
                                  "[tryboot]\nboot_partition=3\n")


def root_tree(board: Board, dest: Path, version: str, bundle: bytes | None,
              app: Path | None = None, stamp: dict | None = None) -> dict:
    """Slot A: the application slot, sandboxed unit, masked serial getty, no password accounts.

    APP is a verified release's ``app/`` payload (firmware, site-packages, dependencies.json),
    laid out under /opt/mamori; without it the local tree's firmware and the wheels of the
    board's lock are laid out (a development build). Returns dependencies.json.
    """
    opt = dest / unit_mod.APP_DIR.lstrip("/")
    if app is None:
        deps = appslot.lay_out(board, opt)
    else:
        if not (app / "firmware/gateway/cli/main.py").is_file():
            raise TargetError("the signed release carries no gateway firmware "
                              "(app/firmware/gateway/cli/main.py)",
                              "publish a payload with app/firmware/ for a Linux board")
        deps = appslot.check_app(board, app)
        shutil.copytree(app, opt, ignore=appslot.IGNORE)
    profile = ROOT / "boards" / (board.name + ".toml")
    if app is not None and (app / "boards" / profile.name).is_file():
        profile = app / "boards" / profile.name
    shutil.copy2(profile, _mk(dest / "etc/mamori") / "board.toml")
    sysd = dest / "etc/systemd/system"
    _write(sysd / UNIT_NAME, unit_mod.render(board, BUNDLE_NAME))
    _write(dest / unit_mod.UDEV_RULE, unit_mod.udev_rule(board))
    policy = unit_mod.dbus_policy(board)
    if policy is not None:
        _write(dest / unit_mod.DBUS_POLICY, policy)
    _mk(sysd / "multi-user.target.wants")
    os.symlink("../" + UNIT_NAME, sysd / "multi-user.target.wants" / UNIT_NAME)
    consoles = set(SERIAL_GETTYS) | {board.console.serial}
    for tty in sorted(consoles):
        os.symlink("/dev/null", sysd / ("serial-getty@%s.service" % tty))
    # A system user without a password or a login shell; nothing else is created.
    _write(dest / "usr/lib/sysusers.d/mamori.conf",
           'u %s - "Mamori gateway" %s /usr/sbin/nologin\n' % (unit_mod.USER,
                                                                board.storage.state_dir))
    _write(dest / "etc/ssh/sshd_config.d/10-mamori.conf",
           "PermitRootLogin no\nPasswordAuthentication no\nPermitEmptyPasswords no\n"
           "KbdInteractiveAuthentication no\n")
    release = {"board": board.name, "version": version, "slot": "A",
               "bundle_sha256": hashlib.sha256(bundle).hexdigest() if bundle else None}
    release.update(stamp or {"build": "development", "signed": False})
    _write(dest / "etc/mamori/release.json", json.dumps(release, sort_keys=True, indent=1)
           + "\n")
    return deps


def tree_bytes(tree: Path) -> int:
    """Bytes the files of TREE take on ext4 (each rounded up to 4 KiB blocks, plus inodes)."""
    total = 0
    for p in tree.rglob("*"):
        size = p.lstat().st_size if p.is_file() and not p.is_symlink() else 0
        total += (size + 4095) // 4096 * 4096 + 256
    return total


def slot_mib_for(tree: Path) -> int:
    """An A/B slot size that holds TREE with a quarter spare for updates that grow."""
    return max(MIN_SLOT_MIB, -(-tree_bytes(tree) * 5 // 4 // MIB) + 4)


def overlay(src: Path, dest: Path, what: str) -> None:
    """Copy a release's os/ or boot/ payload over DEST; never replace Mamori's own files."""
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        target = dest / rel
        if p.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target.exists() or target.is_symlink():
            raise TargetError("the release's %s/%s would replace a file Mamori generates"
                              % (what, rel.as_posix()),
                              "remove it from the release payload; the flash tool writes it")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)


def data_tree(board: Board, dest: Path, bundle: bytes | None) -> None:
    """Data partition (the state dir): the installation bundle and the slot table."""
    slots = board.storage.slots
    _write(dest / "slots.json", json.dumps(
        {"active": "A", "slots": {"A": slots[0], "B": slots[1]}, "boot": board.storage.boot},
        sort_keys=True, indent=1) + "\n", 0o600)
    if bundle is not None:
        _write(dest / BUNDLE_NAME, bundle, 0o600)


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def audit_tree(boot: Path, root: Path) -> list[str]:
    """Production rules the built trees must meet; returns the violations (empty is good)."""
    bad = []
    cmdline = (boot / "cmdline.txt").read_text()
    if "console=serial" in cmdline or "console=ttyS" in cmdline or "console=ttyAMA" in cmdline:
        bad.append("cmdline.txt enables a serial console")
    if (boot / "userconf.txt").exists() or (boot / "userconf").exists():
        bad.append("boot partition creates a default user (userconf.txt)")
    unit = (root / "etc/systemd/system" / UNIT_NAME).read_text()
    for need in ("NoNewPrivileges=yes", "ProtectSystem=strict", "CapabilityBoundingSet=",
                 "Type=notify", "WatchdogSec="):
        if need not in unit:
            bad.append("unit lacks " + need)
    for tty in SERIAL_GETTYS:
        link = root / "etc/systemd/system" / ("serial-getty@%s.service" % tty)
        if not link.is_symlink() or os.readlink(link) != "/dev/null":
            bad.append("serial-getty@%s is not masked" % tty)
    for name in ("etc/shadow", "etc/passwd"):
        if (root / name).exists():
            bad.append(name + " is shipped (accounts must come from sysusers, without passwords)")
    return bad


def _run(cmd: list[str]) -> None:
    if shutil.which(cmd[0]) is None:
        raise TargetError("%s is not installed" % cmd[0],
                          "apt-get install e2fsprogs dosfstools mtools")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TargetError("%s failed: %s" % (cmd[0], proc.stderr.strip()[-300:]))


def _fat(path: Path, size: int, tree: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    _run(["mkfs.vfat", "-n", "BOOT", str(path)])
    for p in sorted(tree.iterdir()):
        _run(["mcopy", "-i", str(path), str(p), "::/" + p.name])


def _ext4(path: Path, size: int, label: str, tree: Path | None) -> None:
    with open(path, "wb") as f:
        f.truncate(size)
    cmd = ["mkfs.ext4", "-q", "-F", "-L", label, "-O", "^has_journal,^metadata_csum_seed",
           "-E", "root_owner=0:0"]
    if tree is not None:
        cmd += ["-d", str(tree)]
    _run(cmd + [str(path)])


def mbr(ident: int, parts: list[tuple[int, int, int]]) -> bytes:
    """A DOS partition table: PARTS are (type, first sector, sectors)."""
    table = bytearray(512)
    struct.pack_into("<I", table, 440, ident)
    for i, (ptype, start, count) in enumerate(parts):
        # CHS fields set to the LBA-only marker; every modern loader reads the LBA fields.
        entry = struct.pack("<B3sB3sII", 0x80 if i == 0 else 0, b"\xfe\xff\xff", ptype,
                            b"\xfe\xff\xff", start, count)
        table[446 + 16 * i:446 + 16 * (i + 1)] = entry
    table[510:512] = b"\x55\xaa"
    return bytes(table)


def build_image(board: Board, out: Path, bundle: bytes | None = None,
                size_mib: int = DEFAULT_SIZE_MIB, source: FirmwareSource | None = None) -> dict:
    """Build the full disk image into OUT (a regular file); return its description.

    SOURCE is a verified ``FirmwareSource`` (host_tools.flash.source); None: the local tree,
    stamped as a development build.
    """
    linux_board(board)
    version = source.version if source is not None else software_version()
    stamp = source.stamp() if source is not None else None
    app = source.tree if source is not None and source.build == "release" else None
    ident = disk_id(board, version)
    with tempfile.TemporaryDirectory(prefix="mamori-image-") as tmp:
        t = Path(tmp)
        boot, root, data = _mk(t / "boot"), _mk(t / "root"), _mk(t / "data")
        boot_tree(board, boot, ident)
        deps = root_tree(board, root, version, bundle, app, stamp)
        data_tree(board, data, bundle)
        if source is not None and source.os_dir is not None:
            overlay(source.os_dir, root, "os")
        if source is not None and source.boot_dir is not None:
            overlay(source.boot_dir, boot, "boot")
        need = slot_mib_for(root)
        if size_mib == 0:
            size_mib = -(-(1 + BOOT_MIB + DATA_MIB + 2 * need) // 16) * 16
        slot_mib = (size_mib - 1 - BOOT_MIB - DATA_MIB) // 2
        if slot_mib < need:
            raise TargetError("an image of %d MiB is too small: each slot needs %d MiB"
                              % (size_mib, need), "use --size-mib %d or more (or leave it out)"
                              % (1 + BOOT_MIB + DATA_MIB + 2 * need))
        sizes = [BOOT_MIB, slot_mib, slot_mib, size_mib - 1 - BOOT_MIB - 2 * slot_mib]
        bad = audit_tree(boot, root)
        if bad:
            raise TargetError("the image would break production rules: " + "; ".join(bad))
        files = [t / "p1.img", t / "p2.img", t / "p3.img", t / "p4.img"]
        _fat(files[0], sizes[0] * MIB, boot)
        _ext4(files[1], sizes[1] * MIB, "mamori_a", root)
        _ext4(files[2], sizes[2] * MIB, "mamori_b", None)
        _ext4(files[3], sizes[3] * MIB, "mamori_data", data)
        parts, start = [], MIB // 512
        for ptype, mib in zip((0x0E, 0x83, 0x83, 0x83), sizes, strict=True):
            parts.append((ptype, start, mib * MIB // 512))
            start += mib * MIB // 512
        with open(out, "wb") as img:
            img.write(mbr(ident, parts))
            img.truncate(size_mib * MIB)
            for (_, first, _), f in zip(parts, files, strict=True):
                img.seek(first * 512)
                with open(f, "rb") as src:
                    shutil.copyfileobj(src, img, BLOCK)
    return {"board": board.name, "version": version, "disk_id": "%08x" % ident,
            **(stamp or {"build": "development", "signed": False}),
            "dependencies": deps["wheels"], "base_os_requires": board.to_dict()["base_os_requires"],
            "python_abi": "cp%s-%s" % (deps["python"].replace(".", ""), deps["arch"]),
            "partitions": [{"number": i + 1, "start": p[1] * 512, "bytes": p[2] * 512,
                            "role": role} for i, (p, role) in
                           enumerate(zip(parts, ("boot", "slot-a", "slot-b", "data"),
                                         strict=True))]}


# -- writing to a device or a file ---------------------------------------------------------
def _mounted_sources(mounts_file: str) -> set[str]:
    out: set[str] = set()
    try:
        text = Path(mounts_file).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0].startswith("/dev/"):
            out.add(os.path.realpath(fields[0]))
    return out


def _swaps() -> set[str]:
    try:
        lines = Path("/proc/swaps").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {os.path.realpath(ln.split()[0]) for ln in lines if ln.startswith("/dev/")}


def _partitions_of(dev: str) -> set[str]:
    """DEV and the device nodes of its partitions (from sysfs)."""
    name = os.path.basename(dev)
    out = {dev}
    sys_dir = Path("/sys/class/block") / name
    if sys_dir.is_dir():
        for child in sys_dir.iterdir():
            if (child / "partition").exists():
                out.add("/dev/" + child.name)
    return out


def _host_disks() -> set[str]:
    """Whole disks holding the host's root or boot filesystem (best effort, via sysfs)."""
    disks = set()
    for mnt in ("/", "/boot", "/boot/efi", "/usr", "/var"):
        try:
            st = os.stat(mnt)
        except OSError:
            continue
        link = Path("/sys/dev/block/%d:%d" % (os.major(st.st_dev), os.minor(st.st_dev)))
        if not link.exists():
            continue
        real = link.resolve()
        disk = real.parent if (real / "partition").exists() else real
        disks.add("/dev/" + disk.name)
    return disks


def check_destination(out: str, mounts_file: str = "/proc/self/mounts") -> str:
    """'file' or 'device'; refuse a mounted device, the host's own disk, anything else."""
    path = os.path.realpath(out)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(path) or "."):
            raise TargetError("the folder for %s does not exist" % out)
        return "file"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if not stat.S_ISBLK(st.st_mode):
        raise TargetError("%s is neither a regular file nor a block device" % out,
                          "give an image file name or a removable disk such as /dev/sdX")
    family = _partitions_of(path)
    busy = family & (_mounted_sources(mounts_file) | _swaps())
    if busy:
        raise TargetError("%s is in use: %s is mounted or used as swap"
                          % (out, ", ".join(sorted(busy))),
                          "unmount it first (e.g. `umount %s`)" % sorted(busy)[0])
    for disk in _host_disks():
        if disk in family or path in _partitions_of(disk):
            raise TargetError("%s is this computer's own disk" % out,
                              "insert the board's SD card or eMMC and pick its device")
    return "device"


def _write_blocks(dst: int, src: Path, total: int, progress: Progress | None) -> None:
    done = 0
    with open(src, "rb") as f:
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            view = memoryview(block)
            while view:
                n = os.write(dst, view)
                view = view[n:]
            done += len(block)
            if progress is not None:
                progress(done, total)
    os.fsync(dst)


def sha256_of(path: str, length: int, progress: Progress | None = None) -> str:
    """SHA-256 of the first LENGTH bytes of a file or device, read back from the medium."""
    h = hashlib.sha256()
    left = length
    fd = os.open(path, os.O_RDONLY)
    try:
        try:  # drop cached pages so a device is really re-read
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except (AttributeError, OSError):
            pass
        while left > 0:
            block = os.read(fd, min(BLOCK, left))
            if not block:
                break
            h.update(block)
            left -= len(block)
            if progress is not None:
                progress(length - left, length)
    finally:
        os.close(fd)
    if left:
        raise VerifyError("%s is %d bytes shorter than the image" % (path, left),
                          "the device is too small or the write was cut short")
    return h.hexdigest()


def verify_target(out: str, expected: str, length: int | None,
                  progress: Progress | None) -> dict:
    """Re-read OUT and compare with the expected SHA-256."""
    if length is None:
        try:
            length = os.path.getsize(out) if os.path.isfile(out) else None
        except OSError:
            length = None
        if length is None:
            raise TargetError("give --bytes for a device (printed by `mamori flash image --json`)")
    if not os.path.exists(out):
        raise TargetError("%s does not exist" % out)
    got = sha256_of(out, length, progress)
    if got != expected.lower():
        raise VerifyError("verification mismatch on %s: read back SHA-256 %s, expected %s"
                          % (out, got, expected.lower()),
                          "the medium is faulty or was changed; flash it again")
    return {"target": out, "sha256": got, "bytes": length, "ok": True}


def flash_image(board: Board, out: str, bundle: bytes | None = None,
                size_mib: int = DEFAULT_SIZE_MIB, progress: Progress | None = None,
                assume_yes: bool = False, mounts_file: str = "/proc/self/mounts",
                source: FirmwareSource | None = None) -> dict:
    """Build the image, write it to OUT (file or device), read it back, verify its SHA-256."""
    linux_board(board)
    kind = check_destination(out, mounts_file)
    if kind == "device" and not assume_yes:
        raise TargetError("refusing to overwrite device %s without --yes" % out,
                          "double-check the device name, then add --yes")
    with tempfile.TemporaryDirectory(prefix="mamori-image-") as tmp:
        built = Path(tmp) / "image.img"
        desc = build_image(board, built, bundle, size_mib, source)
        total = built.stat().st_size
        h = hashlib.sha256()
        with open(built, "rb") as f:
            for block in iter(lambda: f.read(BLOCK), b""):
                h.update(block)
        digest = h.hexdigest()
        flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if kind == "file" else 0)
        # An image file appears under its name only complete and verified (Ctrl-C, a full
        # disk: no partial image that looks like a good one); a device is written in place.
        with complete_or_absent(Path(out), enabled=kind == "file") as dest:
            fd = os.open(dest, flags, 0o644)
            try:
                if kind == "device" and os.lseek(fd, 0, os.SEEK_END) < total:
                    raise TargetError("device %s is smaller than the %d-byte image"
                                      % (out, total))
                os.lseek(fd, 0, os.SEEK_SET)
                _write_blocks(fd, built, total, progress)
            finally:
                os.close(fd)
            verify_target(str(dest), digest, total, None)
    desc.update({"target": out, "kind": kind, "sha256": digest, "bytes": total, "verified": True})
    if bundle is not None:
        desc["bundle_sha256"] = hashlib.sha256(bundle).hexdigest()
    return desc
