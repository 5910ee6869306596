"""Board in a box: a board's base OS as an arm64 Debian root (mmdebstrap, cached outside the
repository), the image's slot A and data partition read back out of the image file, and the
unit's own ExecStart run from those files alone, as the unit's user with the unit's
capabilities, under qemu-user (binfmt) in a network namespace the test made.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from host_tools.flash.unit import parse as parse_unit

SUITES = {"debian-12": "bookworm", "debian-13": "trixie"}
DEB_ARCH = {"aarch64": "arm64", "armv7l": "armhf"}
ROOTFS_FORMAT = 2
# The one seam: qemu-user relays no NETLINK_NETFILTER socket, so the base root takes Debian's
# nftables package built for the host CPU (multiarch; it runs natively on the same kernel and
# in the same network namespace). Everything else is the board's arm64 build.
HOST_ARCH_PACKAGES = {"nftables": "qemu-user cannot relay NETLINK_NETFILTER sockets"}
NOTIFY_PATH = "/run/mamori-notify.sock"
UNIT_PATH = "etc/systemd/system/mamori-gateway.service"


def cache_root() -> Path:
    """~/.cache/mamori (or $XDG_CACHE_HOME/mamori): outlives test runs, never in the repo."""
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "mamori"


def rootfs_tar(base_os: dict, arch: str) -> tuple[Path, float | None]:
    """The cached base root for BASE_OS (a profile's base_os_requires) on ARCH, built with
    mmdebstrap when missing; returns (tar, build seconds or None when it was cached)."""
    suite = SUITES[base_os["distribution"]]
    deb_arch = DEB_ARCH[arch]
    host = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    include = [p + ":" + host if p in HOST_ARCH_PACKAGES and host != deb_arch else p
               for p in base_os["packages"]]
    key = hashlib.sha256(json.dumps({"format": ROOTFS_FORMAT, "suite": suite, "arch": deb_arch,
                                     "packages": sorted(include)},
                                    sort_keys=True).encode()).hexdigest()[:16]
    cache = cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    tar = cache / ("rootfs-%s-%s.tar" % (deb_arch, key))
    with open(cache / "rootfs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs wait for one build
        if tar.is_file():
            return tar, None
        part = tar.with_suffix(".part%d" % os.getpid())
        start = time.monotonic()
        proc = subprocess.run(
            ["mmdebstrap", "--quiet", "--architectures=%s,%s" % (deb_arch, host),
             "--variant=essential", "--include=" + ",".join(include), "--format=tar", suite,
             str(part)],
            capture_output=True, text=True, timeout=1500)
        if proc.returncode != 0:
            part.unlink(missing_ok=True)
            raise AssertionError("mmdebstrap failed: " + proc.stderr[-3000:])
        os.replace(part, tar)
        return tar, time.monotonic() - start


def partitions(image: Path) -> list[tuple[int, int]]:
    """(byte offset, byte length) of the four MBR partitions of IMAGE, read from its table."""
    with open(image, "rb") as f:
        mbr = f.read(512)
    assert mbr[510:512] == b"\x55\xaa", "no MBR in the image"
    out = []
    for i in range(4):
        first, count = struct.unpack_from("<II", mbr, 446 + 16 * i + 8)
        out.append((first * 512, count * 512))
    return out


def read_ext4(image: Path, number: int, dest: Path, work: Path) -> Path:
    """Copy partition NUMBER's ext4 filesystem out of IMAGE and dump its tree into DEST."""
    offset, length = partitions(image)[number - 1]
    part = work / ("p%d.ext4" % number)
    with open(image, "rb") as src, open(part, "wb") as out:
        src.seek(offset)
        left = length
        while left:
            block = src.read(min(left, 1 << 20))
            assert block, "image shorter than its partition table says"
            out.write(block)
            left -= len(block)
    dest.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["debugfs", "-R", "rdump / " + str(dest), str(part)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    part.unlink()
    return dest


def usb_standin(board: dict, dest: Path, gid: int) -> Path:
    """The board's USB controller, which cannot run here: a sysfs-shaped tree (the project's USB
    fixture) with the board's needed dongle plugged in, to be mounted at the box's /sys/bus.
    The authorisation attributes get the group the image's udev rule gives them on a board."""
    from firmware.gateway.selftest.usbfixture import HUB, FixtureTree, vendor_device

    hw = dest / "usb" / "hw"
    tree = FixtureTree(hw)
    for port in board.get("usb_ports", []):
        if port["needed"]:
            hub = port["path"].rsplit(".", 1)[0]
            if "." in port["path"] and not tree.has(hub):
                tree.insert(hub, HUB)  # the board's on-board hub (the Pi 4's VL805)
            tree.insert(port["path"],
                        vendor_device(port["allow"], port.get("purpose", "needed device")))
    (dest / "usb" / "devices").symlink_to("hw/bus/usb/devices")
    for link in tree.links.iterdir():  # absolute host paths -> relative, valid in the chroot
        target = Path(os.readlink(link))
        link.unlink()
        link.symlink_to(os.path.relpath(target, link.parent))
    for dirpath, _, files in os.walk(hw):
        for name in files:
            if name in ("authorized", "authorized_default", "interface_authorized_default",
                        "remove"):
                path = os.path.join(dirpath, name)
                os.chown(path, 0, gid)
                os.chmod(path, 0o664)
    return dest


@dataclass
class Unit:
    """What the test takes from the image's unit file."""

    user: str
    group: str
    exec_start: list[str]
    environment: dict[str, str]
    capabilities: list[str]
    watchdog_usec: int
    state_dir: str
    settings: dict[str, list[str]] = field(default_factory=dict)


def read_unit(root: Path) -> Unit:
    """Parse the slot's unit file (the copy read back from the image)."""
    s = parse_unit((root / UNIT_PATH).read_text())
    env: dict[str, str] = {}
    for value in s.get("Environment", []):
        for item in shlex.split(value):
            k, v = item.split("=", 1)
            env[k] = v
    caps = " ".join(s.get("AmbientCapabilities", [])).split()
    dog = s["WatchdogSec"][0]
    return Unit(user=s["User"][0], group=s["Group"][0], exec_start=shlex.split(s["ExecStart"][0]),
                environment=env, capabilities=caps,
                watchdog_usec=int(float(dog.rstrip("s"))) * 1_000_000,
                state_dir="/var/lib/" + s["StateDirectory"][0], settings=s)


class NotifyListener:
    """The sd_notify end systemd would hold: a datagram socket, senders' pids from
    SCM_CREDENTIALS (NotifyAccess=main: only the main pid counts)."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)  # the unit's user connects to it, as to systemd's
        self.sock.settimeout(0.2)
        self.messages: list[tuple[int, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        size = socket.CMSG_SPACE(struct.calcsize("3i"))
        while not self._stop.is_set():
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, size)
            except TimeoutError:
                continue
            except OSError:
                return
            pid = -1
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:12])[0]
            self.messages.append((pid, data.decode(errors="replace")))

    def saw(self, pid: int, word: str) -> bool:
        """Whether PID sent a message holding the line WORD (e.g. READY=1)."""
        return any(p == pid and word in m.splitlines() for p, m in self.messages)

    def close(self) -> None:
        """Stop listening."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@dataclass
class Box:
    """An extracted base root with the image's slot A laid over it, in its own netns."""

    root: Path
    netns: str
    unit: Unit
    sys_bus: Path | None = None
    addresses: dict[str, str] = field(default_factory=dict)
    notify: NotifyListener | None = None

    def command(self, argv: list[str], as_unit: bool = True,
                extra_env: dict[str, str] | None = None) -> list[str]:
        """A host command line running ARGV inside the box (as the unit's user, with the
        unit's environment and ambient capabilities, when AS_UNIT)."""
        r = shlex.quote(str(self.root))
        inner = ["/usr/bin/env", "-i"]
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        if as_unit:
            env.update({"HOME": self.unit.state_dir, "USER": self.unit.user,
                        "LOGNAME": self.unit.user, **self.unit.environment})
        env.update(extra_env or {})
        inner += ["%s=%s" % kv for kv in env.items()]
        if as_unit:
            caps = ",".join("+" + c.lower().removeprefix("cap_") for c in
                            self.unit.capabilities)
            prefix = ["/usr/bin/setpriv", "--reuid=" + self.unit.user,
                      "--regid=" + self.unit.group, "--init-groups", "--no-new-privs"]
            if caps:
                prefix += ["--inh-caps=" + caps, "--ambient-caps=" + caps,
                           "--bounding-set=-all," + caps]
            inner = prefix + ["--"] + inner
        # WATCHDOG_PID is the shell's pid, which every exec below keeps (as systemd's MAINPID).
        bus = ("mount --bind %s {r}/sys/bus; " % shlex.quote(str(self.sys_bus))
               if self.sys_bus is not None else "")
        script = ("set -e; mount -t proc proc {r}/proc; mount --rbind /dev {r}/dev; "
                  "mount -t sysfs sysfs {r}/sys; " + bus + "exec chroot {r} {cmd}").format(
            r=r, cmd=" ".join(shlex.quote(a) for a in inner + argv).replace(
                "__WATCHDOG_PID__", "$$"))
        return ["ip", "netns", "exec", self.netns, "/bin/sh", "-c", script]

    def host(self, argv: list[str]) -> list[str]:
        """A host command (e.g. the device agent) in the box's network namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def state(self) -> Path:
        """The state dir as seen from the host."""
        return self.root / self.unit.state_dir.lstrip("/")


@contextmanager
def box(tar: Path, slot: Path, data: Path, work: Path, board: dict) -> Iterator[Box]:
    """Extract the base root, lay slot A over it, create the unit's user (sysusers, as the
    image declares it), fill its StateDirectory from the data partition, make a netns."""
    root = work / "root"
    root.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tar), "-C", str(root)], check=True)
    subprocess.run(["cp", "-a", str(slot) + "/.", str(root)], check=True)
    proc = subprocess.run(["systemd-sysusers", "--root=" + str(root)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    unit = read_unit(root)
    state = root / unit.state_dir.lstrip("/")
    state.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(data) + "/.", str(state)], check=True)
    ids = {}
    for line in (root / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        ids[f[0]] = (int(f[2]), int(f[3]))
    uid, gid = ids[unit.user]
    for dirpath, _, files in os.walk(state):
        os.chown(dirpath, uid, gid)
        for name in files:
            os.chown(os.path.join(dirpath, name), uid, gid)
    state.chmod(0o700)
    netns = "mamori-box-%d-%s" % (os.getpid(), tempfile.mktemp(dir="").strip("/")[-6:])
    subprocess.run(["ip", "netns", "add", netns], check=True)
    b: Box | None = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        addresses = {}
        for i, iface in enumerate(board["network"], 1):
            # The board's network interfaces, which cannot run here: veth pairs in the test's
            # own namespace (nothing is routed out of it), one /24 each.
            addr = "10.79.%d.1" % i
            for cmd in (["link", "add", iface["name"], "type", "veth", "peer", "name",
                         "%s-peer" % iface["name"][:9]],
                        ["addr", "add", addr + "/24", "dev", iface["name"]],
                        ["link", "set", "%s-peer" % iface["name"][:9], "up"],
                        ["link", "set", iface["name"], "up"]):
                subprocess.run(["ip", "-n", netns, *cmd], check=True)
            addresses[iface["name"]] = addr
        b = Box(root, netns, unit, sys_bus=usb_standin(board, work / "sysbus", gid),
                addresses=addresses)
        yield b
    finally:
        if b is not None and b.notify is not None:
            b.notify.close()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.2) -> None:
    """Poll PREDICATE until it is true; fail naming WHAT after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
