"""Zigbee join policy: install-code-only joining for one named device in a short window.

Any other join (no window, another device, the public ``ZigBeeAlliance09`` key, a wrong key,
an expired window) is refused and reported as a ``rogue.zigbee`` alert.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

from firmware.common.installcode import DEFAULT_TC_LINK_KEY, link_key
from firmware.core.errors import PolicyError
from firmware.core.events import Event

MAX_WINDOW = 300


def norm_ieee(ieee: Any) -> str:
    """EUI-64 as lower-case colon-separated hex."""
    return str(ieee).lower()


class JoinPolicy:
    """One join window at a time, bound to one device's IEEE address and install code."""

    def __init__(self, emit: Callable[[Event], Any], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.emit = emit
        self.clock = clock
        self.window: dict[str, Any] | None = None
        self.rogues = 0
        self.last_refusal = ""

    def open_window(self, device_id: str, ieee: str, install_code: bytes,
                    seconds: int = 120) -> bytes:
        """Allow this one device to join for `seconds`; returns its link key for the radio."""
        if not 1 <= seconds <= MAX_WINDOW:
            raise PolicyError("a join window lasts 1..%d seconds" % MAX_WINDOW)
        key = link_key(install_code)
        self.window = {"device_id": device_id, "ieee": norm_ieee(ieee), "key": key,
                       "until": self.clock() + seconds}
        self.emit(Event("zigbee.join_window", "notice", "zigbee", action="permit",
                        target=device_id, result="open", params={"seconds": seconds}))
        return key

    def close(self) -> None:
        """Close the window."""
        self.window = None

    def _rogue(self, ieee: str, reason: str) -> bool:
        self.rogues += 1
        self.last_refusal = reason
        self.emit(Event("rogue.zigbee", "alert", "zigbee", principal=ieee, action="join",
                        target=ieee, result="rejected", reason=reason))
        return False

    def decide(self, ieee: Any, key_used: bytes | None) -> bool:
        """True only for the windowed device joining with its install-code key."""
        if key_used is not None and hmac.compare_digest(key_used, DEFAULT_TC_LINK_KEY):
            return self._rogue(norm_ieee(ieee), "join with the public default trust-centre key")
        return self._decide(norm_ieee(ieee), key_used, radio_checked_key=False)

    def admit(self, ieee: Any) -> bool:
        """A join the trust centre reported after checking the link key itself (real radio).

        The radio only holds the windowed device's install-code key, so what is left to check
        is the window and the address; anything else is a rogue join.
        """
        return self._decide(norm_ieee(ieee), None, radio_checked_key=True)

    def _decide(self, addr: str, key_used: bytes | None, radio_checked_key: bool) -> bool:
        w = self.window
        if w is None:
            return self._rogue(addr, "join attempt with no join window open")
        if self.clock() > w["until"]:
            self.window = None
            return self._rogue(addr, "join attempt after the join window closed")
        if addr != w["ieee"]:
            return self._rogue(addr, "device is not the one being installed")
        if not radio_checked_key and (key_used is None
                                      or not hmac.compare_digest(key_used, w["key"])):
            return self._rogue(addr, "join without the device's install-code key")
        self.window = None  # one device per window
        self.emit(Event("device.joined", "info", "zigbee", principal=w["device_id"],
                        action="join", target=w["device_id"], result="admitted",
                        params={"ieee": addr, "mode": "install-code link key",
                                "key_checked_by": "trust centre" if radio_checked_key
                                else "gateway"}))
        return True
