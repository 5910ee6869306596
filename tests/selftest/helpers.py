"""Build a fully provisioned scratch state dir and look up results for the self-test tests."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.common.boards import load_board
from firmware.core import selftest as model
from firmware.core.events import Event
from firmware.gateway.accesslog.service import AccessLogService
from firmware.gateway.identity import deviceinfo
from firmware.gateway.identity.install import change_admin_credential
from firmware.gateway.identity.keystore import KeyStore
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.selftest.runner import run_checks
from host_tools.logs.inbox import PlatformInbox
from tests.provisioning.sitekit import Kit

TODAY = dt.date(2025, 6, 1)


def provisioned(root: Path) -> Path:
    """A state dir that passes every check in this area (sim board, ★★★).

    Installed from a real site bundle (LAN mutual TLS, key store with inventory, initial admin
    credential changed), WAN configured, and an access log whose heads reached the platform.
    """
    kit = Kit(root, level=3)
    state = kit.state
    state.chmod(0o700)
    initial = kit.bundle.with_name(kit.bundle.name + ".admin-credential").read_text()
    change_admin_credential(state, initial.strip().splitlines()[-1], "selftest-Unique-Pass-9271")
    KeyStore(state).put("platform-client", os.urandom(32), "platform client key (test)",
                        "AES-256-GCM", 256, "generated in the test", 365)
    (state / "wan").mkdir(mode=0o700)
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state), load_board("sim"))
    log = AccessLogService(gw)
    log.open()
    log.set_uploader(PlatformInbox(root / "platform-log"))
    for i in range(3):
        gw.emit(Event("command.unlock", "notice", source="platform", principal="operator-1",
                      action="unlock", target="front-door", result="ok", params={"i": i}))
    log.store.close()
    log.flush_uploads()
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


Results = dict[str, model.Result]


def run_area(state: Path, only: str | None = None, level: int = 3, board: str | None = "sim",
             **kw: Any) -> Results:
    """Run the checks ``only`` selects (an ID, a feature prefix, or all) on TODAY, keyed by ID."""
    return by_id(run_checks(state, level, board, only, today=TODAY, **kw))


def assert_fail(res: Results, check_id: str, reqs: list[str], needle: str) -> None:
    """The check failed, evidences exactly ``reqs``, says ``needle`` and tells how to fix it."""
    r = res[check_id]
    assert r.verdict == "fail", (check_id, r.evidence)
    assert r.requirements == reqs
    assert any(needle in e for e in r.evidence), r.evidence
    assert r.remediation


def single_check(only: str, check_id: str, reqs: list[str]) -> tuple[
        Callable[..., Results], Callable[[Results, str], None]]:
    """``run(state, level=3)`` for one area and ``assert_fail(res, needle)`` for its check."""

    def run(state: Path, level: int = 3) -> Results:
        return run_area(state, only, level)

    def fail(res: Results, needle: str) -> None:
        assert_fail(res, check_id, reqs, needle)

    return run, fail


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
