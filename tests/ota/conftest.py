"""Fixtures for OTA tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ota.helpers import Env


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    """A served release repository and a fresh sim gateway."""
    e = Env(tmp_path)
    try:
        yield e
    finally:
        e.close()
