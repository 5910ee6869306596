"""Build a fully provisioned scratch state dir and look up results for the self-test tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path

from firmware.core import selftest as model
from firmware.gateway import deviceinfo, devicekey

TODAY = dt.date(2025, 6, 1)


def provisioned(root: Path) -> Path:
    """A state dir that passes every check in this area (sim board, ★★★)."""
    state = root / "state"
    state.mkdir(mode=0o700)
    kek = devicekey.device_kek(state)
    wrapped = devicekey.wrap(kek, os.urandom(32), b"platform-client-key")
    p = state / "keys" / "platform.key"
    p.write_bytes(wrapped)
    p.chmod(0o600)
    info = deviceinfo.default_info("sim", 3, TODAY)
    deviceinfo.save(state, info)
    (state / "admin.json").write_text(json.dumps(
        {"users": [{"name": "installer-7f3a", "password": "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA"}],
         "led_pin": 17}), encoding="utf-8")
    (state / "logs").mkdir(mode=0o750)
    (state / "logs" / "gateway.log").write_text("started\n", encoding="utf-8")
    return state


def by_id(results: list[model.Result]) -> dict[str, model.Result]:
    """Results keyed by check ID."""
    return {r.check_id: r for r in results}


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """(mode, sha256) of every entry: proves a run left the live state untouched."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
            out[str(p.relative_to(root))] = (st.st_mode, digest)
    out["."] = (root.stat().st_mode, "")
    return out
