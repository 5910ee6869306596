"""Fixtures of the firewall tests: a fresh namespace lab per test, always removed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require
from tests.firewall.netlab import Lab


@pytest.fixture
def lab() -> Iterator[Lab]:
    """internet <-> gateway <-> lan namespaces (needs root, nft and netns support)."""
    require("netns")
    require("nft")
    lab = Lab()
    try:
        lab.up()
        yield lab
    finally:
        lab.down()
