"""Power cuts: SIGKILL the update verb immediately after every persisted write of a good, a
failing and a refused update, then at 100+ random writes spread over every state.

After each cut the slot the boot loader would pick holds a complete image the repository signed,
and one plain retry ends committed (good), rolled back and marked failed (bad) or refused
(defective signed bundle), with the history, the floors and the alert outbox exactly as if no
cut had happened. Cut points are counted by instrumenting the writes (tests/ota/cutrun.py), so
every point is hit deterministically and each cut costs a fork, not an interpreter start; the
state dir lives on tmpfs when there is one (fsync is irrelevant to a SIGKILL: the page cache
survives it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import Targets

from firmware.core.update import machine
from firmware.core.update.floors import SIGNED_AT
from firmware.core.update.version import compare, newest
from firmware.gateway.update.slots import verify_slot
from firmware.gateway.update.store import read_json
from host_tools.release import repo as repo_mod
from tests.ota.cutrun import CutServer
from tests.ota.helpers import Env, gateway_cli

RANDOM_CUTS = 110
CHUNK = 4096  # three chunks a bundle: resume still crosses chunk boundaries
GOOD, BAD, DEFECTIVE = "good", "bad", "defective"
END_STATE = {GOOD: machine.COMMITTED, BAD: machine.ROLLED_BACK, DEFECTIVE: machine.REFUSED}
RETRY_RC = {GOOD: (0,), BAD: (3, 1), DEFECTIVE: (1,)}  # 1: "already failed/refused" after all


@pytest.fixture
def fast_env(tmp_path: Path) -> Iterator[Env]:
    """An Env whose repository and gateway live on tmpfs when the machine has one."""
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(prefix="mamori-cut-", dir=shm)) if shm.is_dir() and \
        os.access(shm, os.W_OK) else tmp_path
    env = Env(base)
    try:
        yield env
    finally:
        env.close()
        if base != tmp_path:
            shutil.rmtree(base, ignore_errors=True)


class Gateway:
    """The expected outcome model of one gateway, checked against its state dir."""

    def __init__(self, env: Env, cuts: CutServer, mp: pytest.MonkeyPatch) -> None:
        self.env, self.cuts, self.mp = env, cuts, mp
        self.args = ["--state-dir", str(env.state), "--from", env.url]
        self.signed: dict[str, str] = {}
        self.history: list[tuple[str, str]] = []
        self.alerts: list[tuple[str, str]] = []
        self.floors: dict[str, Any] = {"version": "", "time": 0.0, "failed": []}
        self.running = ""
        self.hit: Counter[str] = Counter()

    def publish(self, version: str, kind: str) -> None:
        """Publish `version` as a good, failing (health check) or defective release."""
        real = repo_mod.build_bundle
        if kind == DEFECTIVE:
            self.mp.setattr(repo_mod, "build_bundle", lambda src, prof, v, out, now, h="":
                            real(src, prof, v + ".9", out, now, h))
        try:
            self.env.publish(version, health_rc=1 if kind == BAD else None, chunk_size=CHUNK)
        finally:
            self.mp.setattr(repo_mod, "build_bundle", real)
        ts = json.loads((self.env.repo.meta_dir / "timestamp.json").read_text())
        self.stamp = float(ts["signed"][SIGNED_AT])
        targets = self.env.repo._load("sim", Targets)
        self.signed[version] = targets.signed.targets["sim/firmware.bundle"].hashes["sha256"]

    def cut(self, cut_at: int = 0, cut_in: tuple[str, int] = ("", 0)) -> bool:
        """One run killed after write number cut_at (or the Nth write in a state);
        False when it finished first."""
        rc, events, out = self.cuts.run(self.args, cut_at=cut_at, cut_in=cut_in)
        if rc != -9:
            return False
        assert events and (int(events[-1][0]) == cut_at or events[-1][3] == cut_in[0]), (
            cut_at, cut_in, events[-3:], out)
        self.hit[events[-1][3]] += 1
        self.check_bootable()
        return True

    def retry(self, kind: str) -> list[list[str]]:
        """A plain run (no cut); returns its writes ([n, call, name, state] each)."""
        rc, events, out = self.cuts.run(self.args)
        assert rc in RETRY_RC[kind], out
        return events

    def check_bootable(self) -> None:
        """What the boot loader picks holds a complete, signed image (or nothing yet)."""
        read_json(self.env.state / "update" / "state.json", None)  # never torn
        selector = read_json(self.env.state / "update" / "boot.json", None)
        if not self.running:
            return
        assert selector is not None
        _, boot = machine.select_boot(selector)
        info = verify_slot(self.env.slot(boot["slot"]))
        assert self.signed.get(info["version"]) == info["target"]["sha256"], "never signed"

    def settle(self, version: str, kind: str) -> None:
        """Move the model past `version` and compare it with the gateway."""
        if kind == GOOD:
            self.history.append(("installed", version))
            self.floors["version"] = newest(self.floors["version"], version)
            self.floors["time"] = self.stamp
            self.running = version
        elif kind == BAD:
            self.history.append(("rolled_back", version))
            self.alerts.append(("ota.rollback", version))
            floor = self.floors["version"]  # versions below the floor are refused anyway
            self.floors["failed"] = [v for v in self.floors["failed"]
                                     if compare(v, floor) > 0] + [version]
            self.floors["time"] = self.stamp
        else:
            self.history.append(("refused", version))
            self.alerts.append(("ota.refused", version))
        self.verify(version, kind)

    def verify(self, version: str, kind: str) -> None:
        """History, floors, alerts, record, running image and staging exactly as modelled."""
        up = self.env.state / "update"
        record = read_json(up / "state.json", {})
        assert (record["state"], record["target"]["version"], record["settled"]) == (
            END_STATE[kind], version, True), record
        assert [(h["action"], h["version"]) for h in read_json(up / "history.json", [])] == \
            self.history
        alerts = [json.loads(x) for x in (up / "reports.jsonl").read_text().splitlines()] \
            if (up / "reports.jsonl").exists() else []
        assert [(a["kind"], a["target"]) for a in alerts] == self.alerts
        floors = read_json(up / "floors.json", {})
        assert (floors["version"], floors["time"], floors["failed"]) == (
            self.floors["version"], self.floors["time"], self.floors["failed"])
        selector = read_json(up / "boot.json", {})
        assert verify_slot(self.env.slot(selector["booted"]))["version"] == self.running
        assert not (up / "staging").exists() or not any((up / "staging").rglob("*"))
        assert not list((self.env.state / "slots").glob("*.new"))


def _snapshot(env: Env, dest: Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(env.state, dest, symlinks=True)


def _restore(env: Env, src: Path) -> None:
    shutil.rmtree(env.state)
    shutil.copytree(src, env.state, symlinks=True)


def _every_write(gw: Gateway, version: str, kind: str, base: Path) -> dict[str, list[int]]:
    """Cut after each persisted write of one update in turn; returns the write numbers of
    that update by the state each falls in."""
    _snapshot(gw.env, base)
    events = gw.retry(kind)  # the uncut run: which writes the update makes
    writes = len(events)
    gw.settle(version, kind)
    model = (list(gw.history), list(gw.alerts), json.loads(json.dumps(gw.floors)), gw.running)
    done = gw.env.tmp / "done"
    _snapshot(gw.env, done)
    for k in range(1, writes + 1):
        _restore(gw.env, base)
        assert gw.cut(k), "write %d of %d was not reached" % (k, writes)
        gw.retry(kind)
        gw.verify(version, kind)
    _restore(gw.env, done)
    gw.history, gw.alerts, gw.floors, gw.running = model
    by_state: dict[str, list[int]] = {}
    for n, _, _, state in events:
        by_state.setdefault(state, []).append(int(n))
    return by_state


def _random_point(rng: random.Random, by_state: dict[str, list[int]]) -> tuple[str, int]:
    """A random cut point: first a state at random, then one of the writes made in it (every
    state gets cuts, however few writes it makes)."""
    state = rng.choice(sorted(by_state))
    return state, rng.randint(1, len(by_state[state]))


@pytest.mark.serial("CPU-heavy power-cut loop")
@pytest.mark.slow
def test_power_cuts_at_every_write_and_at_random(fast_env: Env,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seed = int(os.environ.get("MAMORI_CUT_SEED", "0")) or time.time_ns() % 2**32
    rng = random.Random(seed)
    cpu0 = time.process_time()
    env = fast_env
    cuts = CutServer(env.tmp / "cuts")
    try:
        gw = Gateway(env, cuts, monkeypatch)
        env.agent()  # provision the trusted root
        # A factory-fresh gateway, cut during its first install (record still idle).
        gw.publish("1.0", GOOD)
        assert gw.cut(rng.randint(1, 4)) and gw.hit == {machine.IDLE: 1}  # in the check
        gw.retry(GOOD)
        gw.settle("1.0", GOOD)
        exhaustive: dict[str, dict[str, list[int]]] = {}
        for version, kind in (("1.1", GOOD), ("1.2", BAD), ("1.3", DEFECTIVE)):
            gw.publish(version, kind)
            exhaustive[kind] = _every_write(gw, version, kind, env.tmp / "base")
        random_cuts = 0
        before = Counter(gw.hit)
        n = 4
        while random_cuts < RANDOM_CUTS:
            kind = rng.choices((GOOD, BAD, DEFECTIVE), (5, 3, 2))[0]
            version = "1.%d" % n
            gw.publish(version, kind)
            random_cuts += gw.cut(cut_in=_random_point(rng, exhaustive[kind]))
            if rng.random() < 0.3:  # sometimes the power fails again during the retry
                random_cuts += gw.cut(cut_in=_random_point(rng, exhaustive[kind]))
            gw.retry(kind)
            gw.settle(version, kind)
            n += 1
        at_random = gw.hit - before
        writes = {k: sum(len(v) for v in by.values()) for k, by in exhaustive.items()}
        print("power cuts: %d after every write (good %d, failing %d, refused %d), %d random "
              "over %d updates (seed %d); random cuts by state: %s; all cuts by state: %s" % (
                  sum(writes.values()), writes[GOOD], writes[BAD],
                  writes[DEFECTIVE], random_cuts, n - 4, seed,
                  dict(sorted(at_random.items())), dict(sorted(gw.hit.items()))))
        print("%d agent runs, %.1f s of CPU in them, %.1f s in this process" % (
            cuts.runs, cuts.cpu, time.process_time() - cpu0))
        assert set(at_random) >= set(machine.STATES) - {machine.IDLE}, (seed, at_random)
        assert set(gw.hit) == set(machine.STATES), (seed, gw.hit)
        # The installed command, as a person runs it, finds nothing left to do.
        r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url, "--json")
        assert r.returncode in (0, 1), r.stderr
    finally:
        cuts.close()
