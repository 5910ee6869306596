"""Power cuts: SIGKILL the update agent at randomised points of every state, 100+ times.

After every cut, the slot the boot loader would pick holds a complete image whose bundle is one
the repository signed; each update eventually commits or rolls back, never a mixed slot.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from firmware.core.update import machine
from firmware.gateway.update.slots import verify_slot
from firmware.gateway.update.store import read_json
from tests.conftest import ROOT
from tests.ota.helpers import Env

CUTS = 110


def _start(env: Env) -> subprocess.Popen[str]:
    e = dict(os.environ, MAMORI_OTA_TRACE="1")
    return subprocess.Popen(
        [sys.executable, "-m", "firmware.gateway.cli.main", "update", "--state-dir", str(env.state),
         "--from", env.url], cwd=ROOT, env=e, stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, text=True)


def _check_bootable(env: Env, signed: dict[str, str]) -> str:
    selector = read_json(env.state / "update" / "boot.json", None)
    assert selector is not None
    _, boot = machine.select_boot(selector)
    info = verify_slot(env.slot(boot["slot"]))  # complete: every file matches its manifest
    version = info["version"]
    assert signed.get(version) == info["target"]["sha256"], "slot image was never signed"
    read_json(env.state / "update" / "state.json", None)  # record is never torn
    return str(version)


@pytest.mark.slow
def test_power_cuts_at_every_state(env: Env) -> None:
    rng = random.Random(int(os.environ.get("MAMORI_CUT_SEED", "0")) or time.time_ns())
    signed: dict[str, str] = {}

    def publish(n: int) -> None:
        version = "1.%d" % n
        rel = env.publish(version, health_rc=1 if n % 4 == 3 else None)
        md = env.repo._load("sim", __import__("tuf.api.metadata").api.metadata.Targets)
        signed[version] = md.signed.targets["sim/firmware.bundle"].hashes["sha256"]
        assert rel["version"] == version

    publish(0)
    assert env.agent().run()["result"] == "installed"
    n = 1
    publish(n)
    cuts = 0
    hit: set[str] = set()
    finished = 0
    while cuts < CUTS:
        # Cut at a random trace point: every step is a candidate with the same probability.
        proc = _start(env)
        assert proc.stderr is not None
        killed = False
        for line in proc.stderr:
            if line.startswith("mamori-ota-trace ") and rng.random() < 0.25:
                time.sleep(rng.random() * 0.003)
                proc.send_signal(signal.SIGKILL)
                killed = True
                hit.add(line.split()[1])
                break
        proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()
        if killed and proc.returncode == -signal.SIGKILL:
            cuts += 1
        _check_bootable(env, signed)
        record = read_json(env.state / "update" / "state.json", {})
        if record.get("state") in machine.TERMINAL and record.get("target", {}).get(
                "version") == "1.%d" % n:
            finished += 1
            n += 1
            publish(n)
    # Power stays on now: the pending update completes (commit or rollback) and boots cleanly.
    proc = _start(env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 3), err
    _check_bootable(env, signed)
    assert finished >= 3, "updates never completed between cuts"
    assert len(hit) >= 10, hit
