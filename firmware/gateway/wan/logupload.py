"""Access-log uplink: checkpoint heads at once, segments on schedule or request (CPython).

The access log's key escrow (its first seal key and data key) is a secret: it is encrypted
to the platform's log-escrow public key (HPKE, RFC 9180: X25519, HKDF-SHA256, AES-256-GCM)
before it enters the WAN outbox, so it is never stored or sent in clear.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from firmware.core.errors import ConfigError, MamoriError
from firmware.core.events import Event
from firmware.gateway.identity.install import IDENTITY
from firmware.gateway.runtime.gateway import Gateway, Service

ESCROW_FILE = "platform-log-escrow.pub"
ESCROW_INFO = b"mamori-accesslog-escrow/1"
# Uplink priorities (0 first): heads make truncation visible remotely, so they go early.
PRIO = {"keys": 0, "head": 1, "segment": 3}


def hpke_suite() -> Any:
    """The HPKE suite used for the log-key escrow."""
    from cryptography.hazmat.primitives import hpke

    return hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _info(gateway_id: str, log_id: str) -> bytes:
    # Binds the ciphertext to this gateway and this log: it cannot be replayed for another.
    return ESCROW_INFO + b"\x00" + gateway_id.encode() + b"\x00" + log_id.encode()


def seal_escrow(bundle: dict[str, Any], recipient: X25519PublicKey, gateway_id: str,
                log_id: str) -> str:
    """Encrypt the escrow bundle to the platform (base64 of the HPKE ciphertext)."""
    plaintext = json.dumps(bundle, sort_keys=True).encode()
    ct = hpke_suite().encrypt(plaintext, recipient, info=_info(gateway_id, log_id))
    return base64.b64encode(ct).decode()


def open_escrow(sealed: str, private_key: Any, gateway_id: str, log_id: str) -> dict[str, Any]:
    """Platform side: decrypt an escrow bundle and check it is for that log."""
    try:
        pt = hpke_suite().decrypt(base64.b64decode(sealed), private_key,
                                  info=_info(gateway_id, log_id))
        bundle = dict(json.loads(pt))
    except Exception:
        raise MamoriError("log key escrow does not decrypt with this site's escrow key "
                          "for gateway %s, log %s" % (gateway_id[:64], log_id[:64]))
    if bundle.get("log_id") != log_id:
        raise MamoriError("log key escrow is for another log")
    return bundle


def encode_item(item: dict[str, Any], recipient: X25519PublicKey | None,
                gateway_id: str) -> dict[str, Any] | None:
    """Turn an access-log upload item into a JSON-safe uplink body (None: cannot send)."""
    kind = item.get("type")
    if kind == "keys":
        if recipient is None:
            return None
        return {"type": "keys", "log_id": item["log_id"],
                "sealed": seal_escrow(item["bundle"], recipient, gateway_id, item["log_id"])}
    if kind == "head":
        return {"type": "head", "log_id": item["log_id"], "checkpoint": item["checkpoint"]}
    if kind == "segment":
        body = {"type": "segment", "log_id": item["log_id"], "name": item["name"],
                "complete": bool(item.get("complete")),
                "data": base64.b64encode(item["data"]).decode()}
        if item.get("offset"):
            body["offset"] = int(item["offset"])  # a chunk of a segment too big for one message
        return body
    return None


def decode_item(body: dict[str, Any], escrow_key: Any, gateway_id: str) -> dict[str, Any]:
    """Platform side: an uplink body back into an item for host_tools.logs.inbox."""
    kind = body.get("type")
    if kind == "keys":
        return {"type": "keys", "log_id": body["log_id"],
                "bundle": open_escrow(body["sealed"], escrow_key, gateway_id,
                                      str(body["log_id"]))}
    if kind == "segment":
        return dict(body, data=base64.b64decode(body["data"]))
    if kind == "head":
        return dict(body)
    raise ConfigError("unknown log upload item %r" % kind)


def load_recipient(state_dir: Path) -> X25519PublicKey | None:
    """The platform's log-escrow public key pinned by the installation bundle, if any."""
    path = Path(state_dir) / IDENTITY / ESCROW_FILE
    if not path.is_file():
        return None
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, X25519PublicKey):
        raise ConfigError("log escrow key is not X25519", str(path))
    return key


class LogUplinkService(Service):
    """Connects the access log's uploader to the WAN outbox; answers platform log requests."""

    name = "logupload"

    def __init__(self, gw: Gateway, wan: Any, accesslog: Any) -> None:
        super().__init__(gw)
        self.wan = wan
        self.accesslog = accesslog
        self.sent: dict[str, int] = {"keys": 0, "head": 0, "segment": 0}
        self.refused = 0
        self.recipient = load_recipient(gw.state_dir)

    async def start(self) -> None:
        """Install the uploader and listen for platform requests."""
        self.gw.bus.subscribe(self._on_event)
        self.accesslog.set_uploader(self._upload)

    async def stop(self) -> None:
        """Detach from the access log (pending items stay pending)."""
        self.accesslog.set_uploader(None)

    def _upload(self, item: dict[str, Any]) -> bool:
        body = encode_item(item, self.recipient, str(self.gw.gateway_id))
        if body is None:
            self.refused += 1
            return False
        try:
            # Accepted into the durable outbox = delivered at least once (WAN store-and-forward).
            self.wan.submit("logs", body, PRIO[body["type"]])
        except MamoriError:
            self.refused += 1
            return False
        self.sent[body["type"]] += 1
        return True

    def _on_event(self, event: Event) -> None:
        if event.kind == "platform.log_requested":
            self.accesslog.request_upload()

    def status(self) -> dict[str, Any]:
        """Items handed to the WAN outbox."""
        return {"sent": dict(self.sent), "refused": self.refused,
                "escrow_pinned": self.recipient is not None}
