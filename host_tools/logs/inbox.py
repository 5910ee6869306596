"""What the platform keeps of a gateway's access log: the uploaded-copy layout (CPython).

``PlatformInbox(dir)`` is an uploader (see firmware.gateway.accesslog.service) that stores what
it receives the way the platform does: ``platform-keys.json`` (log id, signing public key, seal
key_0, data key), ``heads.jsonl`` (every checkpoint head, as received) and ``seg-*.log``
(the longest prefix of each segment received, possibly sent in chunks at offsets). `mamori
logs` reads that folder.

What is held is never rewritten: the first key escrow is pinned (a later, possibly compromised
gateway cannot re-key its log to re-seal the past), heads are append-only, and a segment upload
is kept only when it extends the bytes already held.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from firmware.common.accesslog.files import SEG_RE
from firmware.core.ids import valid_id
from firmware.gateway.wan.logupload import decode_item


class PlatformInbox:
    """An uploader that files items into an uploaded-copy folder."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.received: list[str] = []

    def __call__(self, item: dict[str, Any]) -> bool:
        """Accept one upload item; True when stored."""
        kind = item.get("type")
        if kind == "keys":
            path = self.dir / "platform-keys.json"
            if path.exists():
                try:
                    held = json.loads(path.read_text())
                except ValueError:
                    return False
                # a re-delivery of the same escrow is fine; a different one is refused
                return bool(held == item["bundle"])
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(item["bundle"], f, indent=1)
        elif kind == "head":
            with (self.dir / "heads.jsonl").open("a") as f:
                f.write(json.dumps(item["checkpoint"], sort_keys=True) + "\n")
        elif kind == "segment":
            name = str(item["name"])
            if not SEG_RE.match(name):
                return False
            path = self.dir / name
            data: bytes = item["data"]
            offset = item.get("offset", 0)
            if not isinstance(offset, int) or offset < 0:
                return False
            held = path.read_bytes() if path.exists() else b""
            if offset > len(held):
                return False  # a gap: an earlier chunk is missing
            overlap = held[offset:offset + len(data)]
            if not data.startswith(overlap):
                return False  # the held bytes would be rewritten: refused
            if len(overlap) == len(data):
                return True  # nothing new (never shorten what the platform holds)
            path.write_bytes(held[:offset] + data)
        else:
            return False
        self.received.append(str(kind))
        return True


LOG_ITEMS = ("keys", "head", "segment")


class Inboxes:
    """The platform's inboxes, one folder per gateway under ROOT, fed with uplink messages."""

    def __init__(self, root: Path, escrow_key: Any) -> None:
        self.root = Path(root)
        self.escrow_key = escrow_key
        self.by_gateway: dict[str, PlatformInbox] = {}

    def file(self, gateway_id: str, body: dict[str, Any]) -> bool | None:
        """File one `logs` message body (None: not a log item); False when refused."""
        if body.get("type") not in LOG_ITEMS:
            return None
        folder = self.root / gateway_id
        # the id comes from the network: a provisioning id, one folder right under the root
        if not valid_id(gateway_id) or folder.resolve().parent != self.root.resolve():
            return False
        inbox = self.by_gateway.setdefault(gateway_id, PlatformInbox(folder))
        return inbox(decode_item(body, self.escrow_key, gateway_id))
