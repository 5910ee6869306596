"""Push over the WAN: signed ``update_req`` per gateway, results from the ``update`` up-link."""

from __future__ import annotations

import base64
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.update_requests import FINAL, SUCCESS
from firmware.core.command_auth import valid_token
from firmware.core.errors import ConfigError
from firmware.core.update.request import REQUEST_VERSION, signing_payload
from firmware.gateway.wan import topics
from host_tools.platform.client import PlatformClient

DEFAULT_TTL = 3600


def new_request(gateway: str, board: str, url: str, min_version: str = "",
                requested_by: str = "", ttl: int = DEFAULT_TTL,
                now: float | None = None) -> dict[str, Any]:
    """An unsigned update request with a fresh id, nonce and expiry."""
    for v in (gateway, board) + ((requested_by,) if requested_by else ()):
        if not valid_token(v):
            raise ConfigError("invalid id %r" % v, hint="letters, digits, '.', '_', ':', '-'")
    now = time.time() if now is None else now
    return {"v": REQUEST_VERSION, "id": "u-" + secrets.token_hex(8), "gateway": gateway,
            "board": board, "url": url, "min_version": min_version,
            "nonce": secrets.token_hex(16), "expires": int(now) + ttl,
            "requested_by": requested_by}


def sign_request(req: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Add the site command key's Ed25519 signature."""
    out = dict(req)
    out["sig"] = base64.b64encode(key.sign(signing_payload(req))).decode()
    return out


class WanPush:
    """Sends requests through the platform's MQTT client and waits for final results."""

    def __init__(self, client: PlatformClient, key: Ed25519PrivateKey, board: str, url: str,
                 min_version: str = "", requested_by: str = "mamori-push",
                 timeout: float = 600.0) -> None:
        self.client = client
        self.key = key
        self.board = board
        self.url = url
        self.min_version = min_version
        self.requested_by = requested_by
        self.timeout = timeout
        self.sent: dict[str, str] = {}  # gateway -> request id
        self.outcomes: dict[str, dict[str, Any]] = {}
        self._start = client.mark()

    def publish(self, gateway: str, _message: dict[str, Any]) -> None:
        """Send one signed update request to `gateway`."""
        req = sign_request(new_request(gateway, self.board, self.url, self.min_version,
                                       self.requested_by), self.key)
        self.sent[gateway] = req["id"]
        self.client.publish(topics.down(gateway, "update_req"), req)

    def _final(self, m: dict[str, Any]) -> bool:
        body = m.get("body") or {}
        gw = m.get("gateway")
        return (m.get("type") == "update" and isinstance(gw, str) and gw in self.sent
                and body.get("request_id") == self.sent[gw] and body.get("result") in FINAL)

    def results(self, wave: list[str]) -> dict[str, bool]:
        """Wait (up to the timeout) for every gateway of the wave; missing ones count failed."""
        want = [g for g in wave if g in self.sent]
        found = self.client.wait_for(lambda m: self._final(m) and m["gateway"] in want,
                                     self.timeout, count=len(want), start=self._start)
        for m in found:
            self.outcomes.setdefault(m["gateway"], m["body"])
        for g in wave:
            self.outcomes.setdefault(g, {"result": "no-answer",
                                         "reason": "no result within %.0f s" % self.timeout})
        return {g: self.outcomes[g].get("result") in SUCCESS for g in wave}
