"""Power cuts during the resale reset: SIGKILL at every step boundary and at 36 random points.

The boundary cuts kill `mamori-gateway reset` itself (stopped at the boundary through its trace
seam); the random cuts kill forked children running the same reset without the interpreter's
start-up, after a random trace point or at a random time.

After every cut: a gateway that starts again never serves devices, LAN, admin or WAN (it
finishes the reset, then holds until an update); from the step that destroys the key-encryption
key onwards the personal data is unreadable at the cut itself, and after the next start no
canary and no old key byte is left in the state directory. A cut before the marker leaves the
household's gateway whole (the reset had not started) and a second run completes it.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from firmware.common import kek as devicekey
from firmware.common.boards import load_board
from firmware.core.errors import MamoriError
from firmware.gateway.admin.personal import PersonalStore
from firmware.gateway.cli.loghandoff import handoff
from firmware.gateway.composition import build_services
from firmware.gateway.owner.resale import resale_reset
from firmware.gateway.runtime.config import GatewayConfig
from firmware.gateway.runtime.gateway import Gateway
from firmware.gateway.runtime.resalemarker import RESETTING, RESOLD, clear_marker, marker
from tests.admin.house import House, build_house
from tests.conftest import ROOT

BOUNDARIES = ("handoff", "marked", "kek", "shred", "personal", "files", "done")
RANDOM_CUTS = 36
SERVING = {"lan", "admin", "wan", "ble", "zigbee", "simdevices", "simradios", "broker",
           "logupload", "monitor"}


@pytest.fixture(scope="module")
def house(tmp_path_factory: pytest.TempPathFactory) -> House:
    """One planted house; every cut works on a fresh copy of its state directory."""
    return build_house(tmp_path_factory.mktemp("house"))


def _secrets(state: Path) -> list[bytes]:
    """The KEK and every wrapped key file: none may survive a reset."""
    keys = [devicekey.kek_path(state).read_bytes()]
    keys += [p.read_bytes() for p in (state / "keys" / "store").glob("*.key")]
    return keys


def _start(house: House, state: Path, escrow: Path, **env: str) -> subprocess.Popen[str]:
    escrow.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "firmware.gateway.cli.main", "reset", "--resale", "--yes", "--json",
         "--state-dir", str(state), "--escrow-to", str(escrow)],
        cwd=ROOT, env=dict(os.environ, MAMORI_RESET_TRACE="1", **env), text=True,
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _feed(proc: subprocess.Popen[str], house: House) -> None:
    assert proc.stdin is not None
    proc.stdin.write(house.installer + "\n")  # the operator's credential (escrow hand-off)
    proc.stdin.close()


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def _cut_at(house: House, state: Path, escrow: Path, point: str) -> list[str]:
    """Run the reset until it stops itself at POINT, then SIGKILL it there."""
    proc = _start(house, state, escrow, MAMORI_RESET_STOP=point)
    _feed(proc, house)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        if line.startswith("mamori-reset-trace "):
            seen.append(line.split()[1])
            if seen[-1] == point:
                break
    deadline = time.monotonic() + 30
    while not _stopped(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert seen and seen[-1] == point, (point, seen)
    return seen


def _fork(state: Path, escrow: Path) -> tuple[int, IO[str]]:
    """The reset in a forked child (the same code as the CLI below the operator check, without
    the interpreter start-up): a real process to SIGKILL; its trace points on a pipe."""
    escrow.mkdir(exist_ok=True)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(r)
        code = 1
        try:
            sys.stderr = os.fdopen(w, "w", buffering=1)
            os.environ["MAMORI_RESET_TRACE"] = "1"
            resale_reset(state, load_board("sim"), handoff("escrow", escrow_to=escrow), yes=True)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    return pid, os.fdopen(r)


def _cut_random(state: Path, escrow: Path, rng: random.Random, lines: int,
                duration: float) -> list[str] | None:
    """SIGKILL after a random trace line (plus up to 3 ms) or at a random time since start;
    None when the reset finished first (no cut)."""
    pid, out = _fork(state, escrow)
    seen: list[str] = []
    if rng.random() < 0.3:
        time.sleep(rng.random() * duration)
    else:
        target = rng.randrange(lines)
        for line in out:
            seen.append(line.split()[1])
            if len(seen) > target:
                time.sleep(rng.random() * 0.003)
                break
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    seen += [x.split()[1] for x in out.read().splitlines() if x.startswith("mamori-reset-")]
    out.close()
    return None if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else seen


def _unreadable(state: Path) -> bool:
    """The personal data cannot be read (its key cannot be unwrapped, or it is gone)."""
    try:
        return PersonalStore(state).read() == {}
    except MamoriError:
        return True


def _raw(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())


def _serving(state: Path, house: House) -> set[str]:
    """What a start of this gateway (with its bundle offered again) would run."""
    gw = Gateway(GatewayConfig(board_name="sim", state_dir=state, bundle=house.bundle),
                 load_board("sim"))
    return {s.name for s in build_services(gw)}


def _at_cut(house: House, state: Path, seen: list[str]) -> str:
    """What must hold at the cut itself; how far the reset had come."""
    m = marker(state)
    if m is None:
        # The reset had not started: nothing of the household is lost, and a rerun completes.
        assert "marked" not in seen, seen
        assert devicekey.kek_path(state).is_file()
        assert PersonalStore(state).read()["name"] == house.canaries["name"]
        pid, out = _fork(state, state.parent / "escrow")
        out.read()
        out.close()
        assert os.waitpid(pid, 0)[1] == 0  # a second run completes the reset
        return "not started"
    if "kek" in seen:  # crypto-erased from the cut itself
        assert not devicekey.kek_path(state).exists()
        assert _unreadable(state)
    if m["state"] == RESETTING:  # an update cannot lift an unfinished reset's hold
        assert clear_marker(state, "9.9.9")["cleared"] is False
    return str(m.get("step"))


def _after_start(house: House, state: Path, secrets: list[bytes]) -> None:
    """A start finishes the reset and holds; nothing of the household or its keys is left."""
    names = _serving(state, house)
    assert "resale" in names and not SERVING & names, names
    m = marker(state)
    assert m is not None and m["state"] == RESOLD
    # the old KEK is gone (a gateway that ran in hold since has a new one for its new log:
    # the raw search below proves none of the old key bytes is left)
    with pytest.raises(MamoriError):
        PersonalStore(state).keys.get("personal-data")
    raw = _raw(state)
    assert [n for n in house.needles() if n in raw] == []
    assert [i for i, s in enumerate(secrets) if s in raw] == []
    for f in (state.parent / "escrow").glob("*"):  # the operator's copy: no clear text either
        assert [n for n in house.needles() if n in f.read_bytes()] == [], f


def _real_start(house: House, state: Path) -> dict:
    """`mamori-gateway run` with the old bundle offered again: its status after a short run."""
    import json

    run = subprocess.run(
        [sys.executable, "-m", "firmware.gateway.cli.main", "run", "--board", "sim", "--state-dir",
         str(state), "--bundle", str(house.bundle), "--duration", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    doc: dict = json.loads((state / "run" / "status.json").read_text())
    return doc


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_every_step_boundary_and_at_random_points(house: House,
                                                            tmp_path: Path) -> None:
    secrets = _secrets(house.state)
    reached: dict[str, int] = {}
    # A full run first: how long it takes and how many trace points it passes.
    full = tmp_path / "full" / "state"
    shutil.copytree(house.state, full)
    t0 = time.monotonic()
    proc = _start(house, full, tmp_path / "full" / "escrow")
    _feed(proc, house)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=120)
    proc.stderr.close()
    duration = time.monotonic() - t0
    assert proc.returncode == 0, err
    points = [x.split()[1] for x in err.splitlines() if x.startswith("mamori-reset-trace ")]
    assert [p for p in points if p != "shred"] == [p for p in BOUNDARIES if p != "shred"]
    _at_cut(house, full, points)
    _after_start(house, full, secrets)

    for i, point in enumerate(BOUNDARIES):
        state = tmp_path / f"b{i}" / "state"
        shutil.copytree(house.state, state)
        seen = _cut_at(house, state, tmp_path / f"b{i}" / "escrow", point)
        where = _at_cut(house, state, seen)
        if point in ("marked", "kek", "files"):  # the real gateway process, as shipped
            doc = _real_start(house, state)
            assert doc["resale"]["resold"] is True and not SERVING & set(doc), sorted(doc)
        _after_start(house, state, secrets)
        reached[where] = reached.get(where, 0) + 1

    shutil.copytree(house.state, tmp_path / "fork" / "state")
    t0 = time.monotonic()
    pid, out = _fork(tmp_path / "fork" / "state", tmp_path / "fork" / "escrow")
    lines = len(out.read().splitlines())
    out.close()
    assert os.waitpid(pid, 0)[1] == 0
    duration = time.monotonic() - t0
    seed = int(os.environ.get("MAMORI_CUT_SEED", "0")) or time.time_ns()
    rng = random.Random(seed)
    cuts = 0
    attempts = 0
    while cuts < RANDOM_CUTS:
        attempts += 1
        assert attempts < RANDOM_CUTS * 3, "the reset kept finishing before the cut"
        state = tmp_path / f"r{attempts}" / "state"
        shutil.copytree(house.state, state)
        seen = _cut_random(state, tmp_path / f"r{attempts}" / "escrow", rng, lines, duration)
        if seen is None:
            continue
        cuts += 1
        where = _at_cut(house, state, seen)
        _after_start(house, state, secrets)
        reached[where] = reached.get(where, 0) + 1
        shutil.rmtree(state.parent)
    # every stage of the machine was cut at least once (seed in the message to replay)
    assert {"not started", "marked", "kek", "personal", "files"} <= set(reached), (seed,
                                                                                   reached)
