"""WAN down-link: command envelopes (``cmd/<device>``), self-test, log and update requests.

The first input byte picks the topic, the rest is the payload the broker delivers. Commands go
through the real ``CommandProcessor`` (strict decoding, envelope checks, Ed25519, expiry, replay
cache, ACL, local priority); property: every payload yields exactly one ``cmd_result`` and a
refusal also a ``command.refused`` event. Update requests: exactly one ``update`` up-link each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from firmware.common.update_requests import UpdateRequestHandler
from firmware.core.acl import DeviceAcl
from firmware.core.command_auth import CommandAuthorizer, LocalOperations, ReplayCache
from firmware.core.events import Event
from firmware.core.update.request import UpdateRequestChecker
from firmware.gateway.selftest.remote import parse_request as parse_selftest
from firmware.gateway.wan import topics
from firmware.gateway.wan.commands import CommandProcessor, ed25519_verifier
from firmware.gateway.wan.requests import parse_request
from host_tools.platform.signing import new_envelope, sign
from host_tools.push.wan import new_request, sign_request

MAX_LEN = 8192
NOW = 1_760_000_000.0
GW = "gw-1"
# A fixed key: the seeds must verify in every process (this key signs nothing real).
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
KINDS = ("cmd", "selftest_req", "log_req", "update_req", "topic")


def seeds(workdir: Path) -> list[bytes]:
    """Signed and unsigned envelopes and requests, as the platform tools make them."""
    envs = [sign(new_envelope(GW, "door-1", "unlock", requested_by="operator-7",
                              approved_by="supervisor-2", now=NOW), KEY),
            new_envelope(GW, "door-1", "lock", params={"mode": "deadbolt", "delay": 5},
                         now=NOW),
            sign(new_envelope(GW, "garage", "unlock", now=NOW), KEY)]
    out = [b"\x00" + json.dumps(e).encode() for e in envs]
    out.append(b"\x01" + json.dumps({"id": "r-1", "ts": NOW}).encode())
    out.append(b"\x01" + json.dumps({"id": "r-2", "level": 3, "only": "keys"}).encode())
    out.append(b"\x02" + json.dumps({"id": "r-3", "ts": NOW, "since": 0.0}).encode())
    req = sign_request(new_request(GW, "sim", "https://updates.example/sim", "1.2", now=NOW),
                       KEY)
    out.append(b"\x03" + json.dumps(req).encode())
    out.append(b"\x04" + topics.command(GW, "door-1").encode())
    return out


def setup(workdir: Path) -> Callable[[bytes], None]:
    """A command processor and an update-request handler wired like the WAN service's."""
    pub = KEY.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    verify = ed25519_verifier(pub)
    queued: list[tuple[str, dict[str, Any]]] = []
    events: list[Event] = []
    acl = DeviceAcl([{"principal": "platform", "device": "door-1",
                      "actions": ["lock", "unlock", "status"]}])
    auth = CommandAuthorizer(GW, verify, lambda: NOW, acl, LocalOperations(lambda: NOW),
                             ReplayCache(4096))

    def execute(device: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "commanded": action, "actual": {"locked": action == "lock"}}

    proc = CommandProcessor(auth, execute, lambda s, b, p: queued.append((s, b)) or "id",
                            events.append)
    upd = UpdateRequestHandler(UpdateRequestChecker(GW, "sim", verify, lambda: NOW),
                               lambda s, b, p: queued.append((s, b)) or "id", events.append)

    def one(data: bytes) -> None:
        if not data:
            return
        kind, payload = KINDS[data[0] % len(KINDS)], data[1:]
        queued.clear()
        events.clear()
        if len(auth.replay) > 2048:  # a long run must not end in replay-cache-full only
            auth.replay = ReplayCache(4096)
        if kind == "cmd":
            result = proc.handle("door-1", payload)
            streams = [s for s, _b in queued]
            if streams != ["cmd_result"] or queued[0][1] is not result:
                raise AssertionError("a command produced %r instead of one cmd_result" % streams)
            if result["refused"] and not any(e.kind == "command.refused" for e in events):
                raise AssertionError("refused command without a command.refused event")
        elif kind == "update_req":
            upd.handle(payload)
            if [s for s, _b in queued] != ["update"]:
                raise AssertionError("an update request produced %r" % queued)
        elif kind == "topic":
            topics.parse_down(GW, payload.decode("utf-8", "replace"))
        else:
            req = parse_request(kind, payload)
            if kind == "selftest_req":  # what the remote self-test service is handed
                parse_selftest({k: v for k, v in req.items() if k != "ts"})

    return one
