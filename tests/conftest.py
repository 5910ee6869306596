"""Shared test plumbing: real components are required in CI and skipped visibly elsewhere."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.components import COMPONENTS, PYTHON_TOOLS, which

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _python_tool(name: str) -> bool:
    return (Path(sys.executable).parent / name).is_file() or shutil.which(name) is not None


_cache: dict[str, str] = {}


def require(component: str) -> None:
    """Skip (with the reason) when a real component is missing; in CI a missing one fails.

    Components are declared once, in tests/components.py (package and presence check).
    """
    if component not in _cache:
        if component in PYTHON_TOOLS:
            _cache[component] = "" if _python_tool(component) else "not installed (make deps)"
        else:
            _cache[component] = COMPONENTS[component].missing()
    if not _cache[component]:
        return
    msg = "real component %r is not available on this machine: %s" % (component,
                                                                      _cache[component])
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing component is a failure, not a skip)")
    pytest.skip(msg)


def require_image_tools() -> None:
    """What `mamori flash image` needs to lay out a Raspberry Pi image (FAT boot, ext4 slots)."""
    for c in ("vfat", "mtools", "ext4"):
        require(c)


def mosquitto_path() -> str:
    """Path of the mosquitto binary (Debian installs it in /usr/sbin)."""
    return which("mosquitto") or "/usr/sbin/mosquitto"


@pytest.fixture
def needs() -> Callable[..., None]:
    """Fixture form of require(): ``needs("mosquitto", "netns")``."""

    def _needs(*components: str) -> None:
        for c in components:
            require(c)

    return _needs
