"""A throw-away signed TUF repository for the self-test (python-tuf metadata API, one key).

The on-board self-test proves the gateway's own TUF client verifies signatures even before a
release is installed: it signs a tiny repository here, has the client accept it, then alters a
target hash without re-signing and has the client refuse it. No release tooling is needed.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization.json import JSONSerializer

TARGET = "sim/firmware.bundle"


def build(repo: Path, data: bytes, lifetime_s: float = 3600.0) -> bytes:
    """Sign root, targets (one target), snapshot and timestamp into repo; return root bytes."""
    repo.mkdir(parents=True, exist_ok=True)
    signer = CryptoSigner.generate_ecdsa()
    expires = (datetime.datetime.now(datetime.UTC)
               + datetime.timedelta(seconds=lifetime_s)).replace(microsecond=0)
    root = Root(expires=expires, consistent_snapshot=True)
    for role in ("root", "targets", "snapshot", "timestamp"):
        root.add_key(signer.public_key, role)
    targets = Targets(expires=expires)
    targets.targets[TARGET] = TargetFile.from_data(TARGET, data)
    snapshot = Snapshot(expires=expires, meta={"targets.json": MetaFile(1)})
    timestamp = Timestamp(expires=expires, snapshot_meta=MetaFile(1))
    out = {}
    docs: list[tuple[str, Metadata[Any]]] = [
        ("1.root", Metadata(root)), ("1.targets", Metadata(targets)),
        ("1.snapshot", Metadata(snapshot)), ("timestamp", Metadata(timestamp))]
    for name, md in docs:
        md.sign(signer)
        out[name] = md.to_bytes(JSONSerializer(compact=True))
        (repo / (name + ".json")).write_bytes(out[name])
    return out["1.root"]


def tamper_target_hash(repo: Path) -> None:
    """Change the target's hash in the signed targets metadata without re-signing it."""
    path = repo / "1.targets.json"
    doc = json.loads(path.read_bytes())
    doc["signed"]["targets"][TARGET]["hashes"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))
