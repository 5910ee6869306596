"""Shared test plumbing: real components are required in CI and skipped visibly elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _netns_ok() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = "mamori-probe-%d" % os.getpid()
    ok = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return ok


CHECKS: dict[str, Callable[[], bool]] = {
    "mosquitto": lambda: shutil.which("mosquitto") is not None
    or Path("/usr/sbin/mosquitto").exists(),
    "nft": lambda: shutil.which("nft") is not None and os.geteuid() == 0,
    "netns": _netns_ok,
    "node": lambda: shutil.which("node") is not None
    and (ROOT / "tests/micropython/node_modules/@micropython").is_dir(),
    "socat": lambda: shutil.which("socat") is not None,
    "openssl": lambda: shutil.which("openssl") is not None,
    "mpy-cross": lambda: shutil.which("mpy-cross") is not None,
    "chromium": lambda: shutil.which("chromium") is not None,
    "losetup": lambda: shutil.which("losetup") is not None and os.geteuid() == 0
    and Path("/dev/loop-control").exists(),
    "mount": lambda: shutil.which("mount") is not None and os.geteuid() == 0,
    "nmap": lambda: shutil.which("nmap") is not None,
    "sslscan": lambda: shutil.which("sslscan") is not None,
}
_cache: dict[str, bool] = {}


def require(component: str) -> None:
    """Skip (with the reason) when a real component is missing; in CI a missing one fails."""
    if component not in _cache:
        _cache[component] = CHECKS[component]()
    if _cache[component]:
        return
    msg = "real component %r is not available on this machine" % component
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing component is a failure, not a skip)")
    pytest.skip(msg)


def mosquitto_path() -> str:
    """Path of the mosquitto binary (Debian installs it in /usr/sbin)."""
    return shutil.which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def needs() -> Callable[..., None]:
    """Fixture form of require(): ``needs("mosquitto", "netns")``."""

    def _needs(*components: str) -> None:
        for c in components:
            require(c)

    return _needs
