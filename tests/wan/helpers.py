"""Small helpers shared by the WAN tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.gateway.wan.client import WanClient
from firmware.gateway.wan.identity import WanIdentity
from firmware.gateway.wan.queue import OutboundQueue


def wait(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll pred until it is true or the (generous, failure-only) timeout passes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def client(ident: WanIdentity, db: Path, **kw: Any) -> WanClient:
    """A started WanClient with fast back-off over a queue at db."""
    kw.setdefault("backoff_min", 0.05)
    kw.setdefault("backoff_max", 0.3)
    c = WanClient(ident, OutboundQueue(db), **kw)
    c.start()
    return c
