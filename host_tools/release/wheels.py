"""The firmware's Python dependencies for a board: a hash-pinned wheel lock per CPU architecture
and Python ABI (``boards/locks/<arch>-py<XY>.txt``), a wheel cache outside the repository, and
the unpacking of verified wheels into an application slot's ``site-packages``.

The lock is a pip requirements file (``pip download --require-hashes -r LOCK`` accepts it): one
line per distribution, ``name==version --hash=sha256:HEX # wheel-file-name``, below a header
naming the architecture, the Python version and the platform tags the wheels were chosen for.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from firmware.common.boardprofile import Board
from firmware.core.errors import ConfigError, MamoriError

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = ROOT / "boards" / "locks"
REQUIREMENTS = LOCK_DIR / "firmware.in"
FORMAT = "mamori-lock/1"
# Board CPU architecture (profile cpu.arch) -> the wheel platform suffix.
ARCHES = {"aarch64": "aarch64", "armv7l": "armv7l", "x86_64": "x86_64"}
_LINE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)"
                   r" --hash=sha256:(?P<sha>[0-9a-f]{64}) # (?P<file>\S+\.whl)$")
_HEADER = re.compile(r"^# (?P<format>mamori-lock/\d+) arch=(?P<arch>\S+) "
                     r"python=(?P<python>3\.\d+) glibc=(?P<glibc>\d+\.\d+)$")
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_|manylinux2014_")
_UNPACKED_DATA = ("purelib", "platlib")


class DependencyError(MamoriError):
    """A locked wheel cannot be fetched, fails its hash or cannot be laid into a slot."""

    code = "dependencies"
    exit_code = 6


@dataclass(frozen=True)
class Wheel:
    """One pinned wheel of the lock."""

    name: str
    version: str
    sha256: str
    file: str

    def to_dict(self) -> dict[str, str]:
        """The form `mamori flash image --json` and dependencies.json carry."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "file": self.file}


@dataclass(frozen=True)
class Lock:
    """A parsed lock file."""

    path: Path
    arch: str
    python: str
    glibc: str
    wheels: tuple[Wheel, ...]

    @property
    def sha256(self) -> str:
        """SHA-256 of the lock file's bytes."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def glibc_needed(self) -> tuple[int, int]:
        """The newest glibc any wheel's manylinux tag asks for ((0, 0): pure Python only)."""
        need = (0, 0)
        for w in self.wheels:
            for m in _MANYLINUX.finditer(w.file):
                need = max(need, (int(m.group(1)), int(m.group(2))) if m.group(1) else (2, 17))
        return need


def python_tag(python: str) -> str:
    """'3.11' -> '311'."""
    return python.replace(".", "")


def lock_path(arch: str, python: str, lock_dir: Path = LOCK_DIR) -> Path:
    """Where the lock for ARCH and PYTHON lives."""
    return lock_dir / ("%s-py%s.txt" % (arch, python_tag(python)))


def lock_for(board: Board, lock_dir: Path = LOCK_DIR) -> Lock:
    """The lock the board's CPU and declared base-OS Python need (read and checked)."""
    base = board.base_os_requires
    if base is None:
        raise ConfigError("declares no [base_os_requires] (Python version, packages)",
                          "boards/%s.toml" % board.name,
                          hint="a Linux board profile says what its base OS provides")
    path = lock_path(board.cpu.arch, base.python, lock_dir)
    if not path.is_file():
        raise ConfigError("no wheel lock for %s / Python %s" % (board.cpu.arch,
                                                                base.python), str(path),
                          hint="create it with `mamori release lock --arch %s --python %s`"
                          % (board.cpu.arch, base.python))
    lock = read_lock(path)
    if lock.arch != board.cpu.arch or lock.python != base.python:
        raise ConfigError("is for %s / Python %s, not %s / Python %s" % (
            lock.arch, lock.python, board.cpu.arch, base.python), str(path))
    need = lock.glibc_needed()
    have = tuple(int(x) for x in base.glibc.split("."))
    if need > have:
        raise ConfigError("wheels need glibc %d.%d but the base OS declares %s" % (
            need[0], need[1], base.glibc), str(path),
            hint="regenerate the lock for glibc %s or raise base_os_requires.glibc"
            % base.glibc)
    return lock


def read_lock(path: Path) -> Lock:
    """Parse a lock strictly: header first, then one pinned wheel per line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("cannot read the wheel lock: %s" % exc, str(path))
    header = None
    wheels: list[Wheel] = []
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            m = _HEADER.match(line)
            if m is not None:
                if m["format"] != FORMAT:
                    raise ConfigError("unknown lock format %r" % m["format"], str(path))
                header = m
            continue
        w = _LINE.match(line)
        if w is None:
            raise ConfigError("line %d is not `name==version --hash=sha256:HEX # file.whl`"
                              % no, str(path))
        if header is None:
            raise ConfigError("the header line (# %s arch=... python=... glibc=...) must come "
                              "first" % FORMAT, str(path))
        wheels.append(Wheel(w["name"].lower().replace("_", "-"), w["version"], w["sha"],
                            w["file"]))
    if header is None or not wheels:
        raise ConfigError("holds no header or no wheels", str(path))
    names = [w.name for w in wheels]
    if len(set(names)) != len(names):
        raise ConfigError("pins a distribution twice", str(path))
    return Lock(path, header["arch"], header["python"], header["glibc"], tuple(wheels))


def _dotted(value: str, what: str, example: str) -> tuple[int, int]:
    """MAJOR.MINOR as two numbers; ConfigError naming WHAT otherwise."""
    parts = value.split(".")
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) <= 3 for p in parts):
        raise ConfigError("%s %r is not MAJOR.MINOR" % (what, value), hint="e.g. " + example)
    return int(parts[0]), int(parts[1])


def platforms(arch: str, glibc: str) -> list[str]:
    """The manylinux platform tags a base OS with GLIBC accepts, newest first."""
    if arch not in ARCHES:
        raise ConfigError("no wheels are published for CPU architecture %r" % arch,
                          hint="known: " + ", ".join(sorted(ARCHES)))
    major, minor = _dotted(glibc, "glibc version", "2.36")
    tags = ["manylinux_%d_%d_%s" % (major, m, ARCHES[arch]) for m in range(minor, 16, -1)]
    return tags + ["manylinux2014_" + ARCHES[arch]]


def _pip_target(arch: str, python: str, glibc: str) -> list[str]:
    cmd = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp",
           "--abi", "cp" + python_tag(python), "--abi", "abi3", "--abi", "none"]
    for tag in platforms(arch, glibc):
        cmd += ["--platform", tag]
    return cmd


def _pip_download(args: list[str], what: str) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = [ln for ln in proc.stderr.splitlines() if "is ignored" not in ln][-6:]
        raise DependencyError("cannot fetch %s from the package index: %s" % (what, " ".join(tail)),
                          "the wheels are fetched once (network to the package index) and kept "
                          "in %s" % cache_dir())


def generate_lock(arch: str, python: str, glibc: str, requirements: Path = REQUIREMENTS,
                  lock_dir: Path = LOCK_DIR) -> Lock:
    """Resolve REQUIREMENTS for the board ABI with pip, hash every wheel, write the lock."""
    if _dotted(python, "Python version", "3.11")[0] != 3:
        raise ConfigError("Python version %r is not Python 3" % python, hint="e.g. 3.11")
    platforms(arch, glibc)  # refuses a bad architecture or glibc before any download
    with tempfile.TemporaryDirectory(prefix="mamori-lock-") as tmp:
        _pip_download([*_pip_target(arch, python, glibc), "-d", tmp, "-r", str(requirements)],
                      "the firmware's dependencies for %s / Python %s" % (arch, python))
        rows = []
        for whl in sorted(Path(tmp).glob("*.whl"), key=lambda p: p.name.lower()):
            name, version = whl.name.split("-")[:2]
            rows.append("%s==%s --hash=sha256:%s # %s" % (
                name.lower().replace("_", "-"), version, _sha256(whl), whl.name))
            store(whl)
    path = lock_path(arch, python, lock_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# The firmware's Python dependencies as wheels for one board CPU and Python "
                    "ABI (pinned, hashed).\n# Regenerate: mamori release lock --arch %s "
                    "--python %s --glibc %s\n# %s arch=%s python=%s glibc=%s\n%s\n" % (
                        arch, python, glibc, FORMAT, arch, python, glibc, "\n".join(rows)))
    return read_lock(path)


def cache_dir() -> Path:
    """The wheel cache: $MAMORI_WHEEL_CACHE, else ~/.cache/mamori/wheels (never the repo).

    Wheels are content-addressed by the lock's SHA-256 and re-hashed on every use, so one
    cache is shared by every build and test run (a per-run MAMORI_CACHE_DIR does not hide it).
    """
    env = os.environ.get("MAMORI_WHEEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / \
        "mamori" / "wheels"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store(whl: Path) -> Path:
    """Put a wheel into the cache (atomically) and return its cached path."""
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (".%s.%d" % (whl.name, os.getpid()))
    shutil.copyfile(whl, tmp)
    return Path(shutil.move(str(tmp), str(d / whl.name)))


def fetch(lock: Lock) -> dict[str, Path]:
    """Every wheel of LOCK from the cache, downloading (hash-checked) what is missing."""
    d = cache_dir()
    good: dict[str, Path] = {}
    missing = []
    for w in lock.wheels:
        p = d / w.file
        if p.is_file() and _sha256(p) == w.sha256:
            good[w.name] = p
        else:
            missing.append(w)
    if missing:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="mamori-wheels-") as tmp:
            req = Path(tmp) / "missing.txt"
            req.write_text("".join("%s==%s --hash=sha256:%s\n" % (w.name, w.version, w.sha256)
                                   for w in missing))
            out = Path(tmp) / "out"
            _pip_download([*_pip_target(lock.arch, lock.python, lock.glibc), "--no-deps",
                           "--require-hashes", "-d", str(out), "-r", str(req)],
                          ", ".join(w.name for w in missing))
            for w in missing:
                got = out / w.file
                if not got.is_file() or _sha256(got) != w.sha256:
                    raise DependencyError("the package index served no wheel %s with the locked "
                                      "SHA-256" % w.file, "regenerate the lock (%s)" % lock.path)
                good[w.name] = store(got)
    return good


def unpack(wheels: dict[str, Path], lock: Lock, dest: Path) -> None:
    """Unpack LOCK's wheels (each re-hashed first) into DEST, a site-packages directory."""
    owner: dict[str, str] = {}
    for w in lock.wheels:
        path = wheels[w.name]
        if _sha256(path) != w.sha256:
            raise DependencyError("wheel %s changed since it was fetched (SHA-256 mismatch)" % path,
                              "delete it from %s and build again" % cache_dir())
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                rel = _member_path(info.filename, path.name)
                if rel is None or info.is_dir():
                    continue
                if rel in owner:
                    raise DependencyError("wheels %s and %s both install %s" % (owner[rel], w.file,
                                                                            rel))
                owner[rel] = w.file
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                target.chmod(0o644)


def _member_path(name: str, wheel: str) -> str | None:
    """Where a wheel member goes below site-packages (None: not installed in a slot)."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or "\\" in name:
        raise DependencyError("wheel %s holds an unsafe path %r" % (wheel, name))
    top = p.parts[0]
    if top.endswith(".data"):
        if len(p.parts) < 3 or p.parts[1] not in _UNPACKED_DATA:
            return None  # scripts, headers, data: the firmware runs as a module, needs none
        return PurePosixPath(*p.parts[2:]).as_posix()
    return p.as_posix()


def describe(lock: Lock) -> list[dict[str, Any]]:
    """The dependency list: name, version, sha256 (and the wheel file) per wheel."""
    return [w.to_dict() for w in lock.wheels]
