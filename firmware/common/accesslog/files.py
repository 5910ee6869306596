"""The access log's files as both the gateway and a reader see them: segments, key files.

Key files are wrapped under the device KEK (firmware.common.kek), each with its own label.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from firmware.common.kek import device_kek, unwrap
from firmware.core.accesslog.chain import SealKey
from firmware.core.errors import IntegrityError

DATA_LABEL = b"mamori-accesslog-data"
SIGN_LABEL = b"mamori-accesslog-sign"
SEAL_LABEL = b"mamori-accesslog-seal"
BUNDLE_LABEL = b"mamori-accesslog-platform-bundle"
LOG_DIR = "accesslog"  # inside the state directory
SEG_RE = re.compile(r"^seg-([0-9]{8})\.log\Z")  # \Z: no trailing newline; ASCII digits


def seg_name(n: int) -> str:
    """File name of segment n."""
    return "seg-%08d.log" % n


def list_segments(log_dir: Path) -> list[tuple[int, Path]]:
    """(number, path) of every segment in a folder, oldest first."""
    out = []
    if Path(log_dir).is_dir():
        for p in Path(log_dir).iterdir():
            m = SEG_RE.match(p.name)
            if m:
                out.append((int(m.group(1)), p))
    return sorted(out)


def ed25519_verify(pub: bytes, msg: bytes, sig: bytes) -> bool:
    """Signature check passed to the portable verifier."""
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except Exception:
        return False


def load_seal(state_dir: Path, log_dir: Path) -> SealKey:
    """The current seal key and epoch of a gateway's log (needs the device KEK)."""
    kek = device_kek(state_dir, create=False)
    blob = unwrap(kek, (Path(log_dir) / "keys" / "seal.key").read_bytes(), SEAL_LABEL)
    if len(blob) != 40:
        raise IntegrityError("access-log seal key file is damaged")
    return SealKey(struct.unpack(">Q", blob[:8])[0], blob[8:])


def load_bundle(state_dir: Path, log_dir: Path) -> dict[str, Any] | None:
    """The not-yet-uploaded platform bundle, if it is still on the gateway."""
    path = Path(log_dir) / "outbox" / "keys.bin"
    if not path.exists():
        return None
    kek = device_kek(state_dir, create=False)
    data: dict[str, Any] = json.loads(unwrap(kek, path.read_bytes(), BUNDLE_LABEL))
    return data
