"""Installation bundles: the file an installer hands to a gateway, up to the signature check.

``verify_bundle_bytes`` runs on the bytes, first with no pinned root (first installation), then
pinned to the site's root. Every malformed bundle must end in the project's own error
(IntegrityError naming file and field), never in a parser's exception.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from firmware.gateway.identity.install import verify_bundle_bytes
from tests.fuzz import world

MAX_LEN = 65536


def seeds(workdir: Path) -> list[bytes]:
    """The site's real bundle, and shrunk variants (parts a mutation can reach quickly)."""
    k = world.kit(workdir)
    raw = k.bundle.read_bytes()
    doc = json.loads(raw)
    small = dict(doc, payload={"gateway_id": "gw1", "level": 2}, sig="AAAA")
    return [raw, json.dumps(small).encode(), json.dumps(doc, separators=(",", ":")).encode()]


def setup(workdir: Path) -> Callable[[bytes], None]:
    """Verification against no pin and against the site's pinned root."""
    k = world.kit(workdir)
    pin = str(k.site.meta["root_fingerprint"])

    def one(data: bytes) -> None:
        for root in (None, pin):
            try:
                verify_bundle_bytes(data, "fuzz.bundle", root)
            except Exception as exc:
                if not hasattr(exc, "message"):  # not a MamoriError: the engine records it
                    raise
    return one
