"""Issue 16: every refusal and every crash window leaves a gateway that installs the next good
release, with history, floors and alerts exactly right (one test per path of the issue)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firmware.common.boardprofile import Board
from firmware.core.errors import IntegrityError, PolicyError
from firmware.gateway.update import status
from host_tools.release import repo as repo_mod
from tests.ota.cutrun import CutServer
from tests.ota.helpers import CHUNK, Env, gateway_cli, tree_digest

YEAR = 365 * 86400


@pytest.fixture
def cuts(tmp_path: Path) -> Iterator[CutServer]:
    """A fork server running the update verb with exact power cuts."""
    server = CutServer(tmp_path / "cuts")
    try:
        yield server
    finally:
        server.close()


def _history(env: Env) -> list[dict[str, Any]]:
    return list(status(env.state)["history"])


def _alerts(env: Env) -> list[dict[str, Any]]:
    out = []
    for name in ("reports.jsonl", "reports.sent.jsonl"):
        p = env.state / "update" / name
        if p.exists():
            out += [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    return out


def _floors(env: Env) -> dict[str, Any]:
    return dict(env.agent().floors())


def _state(env: Env) -> str:
    return str(env.agent().record()["state"])


def _staging_clean(env: Env) -> None:
    staging = env.state / "update" / "staging"
    assert not staging.exists() or not any(staging.rglob("*")), list(staging.rglob("*"))
    assert not list((env.state / "slots").glob("*.new")), "a half-written slot was left"


def _installed(env: Env, version: str) -> None:
    env.publish(version)
    res = env.agent().run()
    assert res["result"] == "installed" and res["version"] == version, res


# -- path 1: a refusal at the slot-write step --------------------------------------------------

def test_defective_signed_bundle_is_refused_once_and_the_next_release_installs(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(env, "1.0")
    real = repo_mod.build_bundle

    def mislabelled(src: Path, profile: Board, version: str, out: Path, now: float,
                    health: str = "") -> dict[str, Any]:
        return real(src, profile, "1.9", out, now, health)  # manifest says 1.9, metadata 1.1
    monkeypatch.setattr(repo_mod, "build_bundle", mislabelled)
    env.publish("1.1")
    monkeypatch.setattr(repo_mod, "build_bundle", real)
    inactive = env.slot("a")
    before = tree_digest(inactive)
    with pytest.raises(IntegrityError, match="differs from its signed metadata"):
        env.agent().run()
    assert _state(env) == "refused"
    last = _history(env)[-1]
    assert (last["action"], last["version"]) == ("refused", "1.1")
    assert "differs from its signed metadata" in last["reason"]
    refused = [a for a in _alerts(env) if a["kind"] == "ota.refused"]
    assert [(a["target"], a["severity"]) for a in refused] == [("1.1", "alert")]
    _staging_clean(env)
    assert tree_digest(inactive) == before
    # The same signed release is not downloaded and refused again on every run...
    hits: list[int] = []
    bundle = env.bundle_url_path({})
    data = (env.repo.path / bundle.lstrip("/")).read_bytes()

    def counted() -> bytes:
        hits.append(1)
        return data
    env.server.overrides[bundle] = counted
    with pytest.raises(PolicyError, match="was refused"):
        env.agent().run()
    assert hits == [] and len(_history(env)) == 2 and len(_alerts(env)) == 1
    # ...and the corrected release installs.
    _installed(env, "1.2")
    assert [h["action"] for h in _history(env)] == ["installed", "refused", "installed"]


def test_staged_bundle_corrupted_after_a_cut_at_verified(env: Env, cuts: CutServer) -> None:
    _installed(env, "1.0")
    env.publish("1.1")
    args = ["--state-dir", str(env.state), "--from", env.url]
    rc, _, out = cuts.run(args, cut_state="verified")
    assert rc == -9, out
    part = env.state / "update" / "staging" / "bundle.part"
    blob = bytearray(part.read_bytes())
    at = blob.index(b"VERSION = '1.1'")  # inside a payload file: the manifest hash covers it
    blob[at] ^= 0x01
    part.write_bytes(bytes(blob))
    inactive = env.slot("a")
    before = tree_digest(inactive)
    with pytest.raises(IntegrityError, match="no longer matches its signed hashes"):
        env.agent().run()
    assert _state(env) == "refused" and tree_digest(inactive) == before
    _staging_clean(env)
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("refused", "1.1")]
    assert [a["kind"] for a in _alerts(env)] == ["ota.refused"]
    # Local corruption is not the release's fault: the next run checks afresh and installs it.
    res = env.agent().run()
    assert res["result"] == "installed" and res["version"] == "1.1"


# -- path 2: a refused release never moves the version floor -----------------------------------

def _set_release(env: Env, **fields: Any) -> None:
    def mutate(signed: Any) -> None:
        signed.targets["sim/firmware.bundle"].unrecognized_fields["custom"]["mamori"].update(
            fields)
    env.resign("sim", mutate)


def test_refused_release_does_not_raise_the_version_floor(env: Env) -> None:
    _installed(env, "1.0")
    env.publish("1.2")
    _set_release(env, min_version="99.0")  # signed, but inconsistent: 1.2 < its own minimum
    for _ in range(2):
        with pytest.raises(PolicyError, match="below its own minimum"):
            env.agent().run()
    assert _floors(env)["version"] == "1.0"
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("refused", "1.2")]  # recorded once, not per run
    assert [(a["kind"], a["target"]) for a in _alerts(env)] == [("ota.refused", "1.2")]
    _set_release(env, min_version="")  # the publisher corrects the metadata and ships 1.3
    _installed(env, "1.3")
    assert _floors(env)["version"] == "1.3"


# -- path 3: the time floor comes only from verified top-level metadata -------------------------

def test_delegated_release_time_never_becomes_the_time_floor(env: Env) -> None:
    _installed(env, "1.0")
    future = time.time() + 10 * YEAR
    _set_release(env, released_at=int(future))  # a holder of the board key re-signs 1.0
    assert env.agent().run()["result"] == "current"
    floor = _floors(env)["time"]
    assert 0 < floor <= time.time() + 60, floor
    _installed(env, "1.1")  # later refreshes are not taken for freeze attacks
    assert 0 < _floors(env)["time"] <= time.time() + 60


def test_time_floor_beyond_the_verified_timestamp_is_refused(env: Env) -> None:
    _installed(env, "1.0")
    floors_path = env.state / "update" / "floors.json"
    poisoned = dict(json.loads(floors_path.read_text()), time=time.time() + 10 * YEAR)
    floors_path.write_text(json.dumps(poisoned))  # as saved by a gateway before this fix
    _installed(env, "1.1")
    assert _floors(env)["time"] <= time.time() + 60


# -- path 4: crash windows after the final record write ----------------------------------------

def test_cut_after_committed_replays_history_and_floors(env: Env, cuts: CutServer) -> None:
    _installed(env, "1.0")
    env.publish("1.1", min_version="1.1")
    args = ["--state-dir", str(env.state), "--from", env.url]
    rc, _, out = cuts.run(args, cut_state="committed")
    assert rc == -9, out
    rc, _, out = cuts.run(args)
    assert rc == 0, out
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("installed", "1.1")]
    assert _floors(env)["version"] == "1.1"
    rc, _, out = cuts.run(args)
    assert rc == 0 and "already current" in out
    assert len(_history(env)) == 2


def test_cut_after_rolled_back_never_retries_and_sends_the_alert(env: Env,
                                                                  cuts: CutServer) -> None:
    _installed(env, "1.0")
    env.publish("1.1", health_rc=1)
    args = ["--state-dir", str(env.state), "--from", env.url]
    rc, _, out = cuts.run(args, cut_state="rolled_back")
    assert rc == -9, out
    rc, events, out = cuts.run(args)
    assert rc == 3, out
    assert {e[3] for e in events} == {"rolled_back"}, "the known-bad release was fetched again"
    rc, events, out = cuts.run(args)
    assert rc == 1 and "already failed its trial boot" in out
    assert {e[3] for e in events} <= {"rolled_back"}
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("rolled_back", "1.1")]
    assert [(a["kind"], a["target"]) for a in _alerts(env)] == [("ota.rollback", "1.1")]
    assert _floors(env)["failed"] == ["1.1"] and status(env.state)["version"] == "1.0"


# -- path 5: the conformance client takes several targets and fails on any ---------------------

def test_tuf_client_downloads_every_target_and_fails_on_any(env: Env, tmp_path: Path) -> None:
    env.publish("1.0")
    md, tg = tmp_path / "md", tmp_path / "tg"
    base = ["tuf-client", "--metadata-dir", str(md)]
    assert gateway_cli(*base, "init", str(env.repo.meta_dir / "1.root.json")).returncode == 0
    common = [*base, "--metadata-url", env.url + "/metadata", "--target-base-url",
              env.url + "/targets", "--target-dir", str(tg)]
    r = gateway_cli(*common, "--target-name", "sim/nope", "--target-name",
                    "sim/sbom-1.0.cdx.json", "download")
    assert r.returncode == 1 and "sim/nope" in r.stderr, r.stderr
    assert len([p for p in tg.rglob("*") if p.is_file()]) == 1  # the good one still came
    r = gateway_cli(*common, "--target-name", "sim/sbom-1.0.cdx.json", "--target-name",
                    "sim/firmware.bundle", "download")
    assert r.returncode == 0, r.stderr
    assert len([p for p in tg.rglob("*") if p.is_file()]) == 2


def test_refusal_reaches_the_alert_uplink_once_through_the_ota_service(env: Env) -> None:
    from types import SimpleNamespace

    from firmware.core.events import Event
    from firmware.gateway.update.service import OtaService

    _installed(env, "1.0")
    env.publish("1.1")
    _set_release(env, board="rpi4")  # a wrong-board release, validly signed
    got: list[Event] = []
    gw: Any = SimpleNamespace(board=env.board, state_dir=env.state, emit=got.append)
    svc = OtaService(gw)
    for _ in range(2):
        svc._run(env.url, "")
        assert svc.last_result["result"] == "refused"
    alerts = [(e.kind, e.severity, e.target) for e in got if e.kind.startswith("ota.")]
    assert alerts == [("ota.refused", "alert", "1.1")]
    assert "wrong-board" in got[0].reason and got[0].event_id
    assert not (env.state / "update" / "reports.jsonl").exists()  # delivered, not pending


def test_interrupted_download_of_a_superseded_release_is_abandoned(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from firmware.core.errors import ProtocolError
    from host_tools.release.serve import RepoHandler

    _installed(env, "1.0")
    env.publish("1.1")
    path = env.bundle_url_path({})
    real = (env.repo.path / path.lstrip("/")).read_bytes()
    serve = RepoHandler.do_GET

    def drop(self: RepoHandler) -> None:
        if self.path != path:
            return serve(self)
        self.send_response(200)  # promises the whole bundle, drops after two chunks
        self.send_header("Content-Length", str(len(real)))
        self.end_headers()
        self.wfile.write(real[:2 * CHUNK + 100])
        self.close_connection = True
    monkeypatch.setattr(RepoHandler, "do_GET", drop)
    with pytest.raises(ProtocolError):
        env.agent().run()
    assert env.agent().record()["chunks_done"] == 2
    monkeypatch.setattr(RepoHandler, "do_GET", serve)
    # While the gateway was offline the repository moved on and pruned the old bundle.
    (env.repo.path / path.lstrip("/")).unlink()
    env.publish("1.2")
    res = env.agent().run()
    assert res["result"] == "installed" and res["version"] == "1.2", res
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("installed", "1.2")]


def test_full_disk_while_staging_is_a_recorded_refusal_not_a_wedge(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from firmware.core.errors import StateError

    _installed(env, "1.0")
    env.publish("1.1")
    def full_disk(real: Any) -> Any:
        def sync(fd: int) -> None:
            if os.readlink("/proc/self/fd/%d" % fd).endswith("bundle.part"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)
        return sync
    for name in ("fsync", "fdatasync"):  # the staging file is synced with one of them
        monkeypatch.setattr(os, name, full_disk(getattr(os, name)))
    with pytest.raises(StateError, match="No space left on device"):
        env.agent().run()
    assert _state(env) == "refused"
    _staging_clean(env)  # the partial bundle is gone: the space is given back
    assert [a["kind"] for a in _alerts(env)] == ["ota.refused"]
    r = gateway_cli("update", "--state-dir", str(env.state), "--from", env.url)
    assert r.returncode == 0 and "Traceback" not in r.stderr  # another process: disk is fine
    assert status(env.state)["version"] == "1.1"


def test_read_only_state_dir_fails_with_a_message(env: Env,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from firmware.core.errors import StateError

    _installed(env, "1.0")
    env.publish("1.1")
    agent = env.agent()

    def read_only(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(StateError, match="Read-only file system"):
        agent.run()
    monkeypatch.undo()
    assert env.agent().run()["version"] == "1.1"


def test_full_disk_after_the_commit_keeps_the_owed_steps(env: Env,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    from firmware.core.errors import StateError
    from firmware.gateway.update import agent as agent_mod

    _installed(env, "1.0")
    env.publish("1.1")
    real = agent_mod.UpdateAgent._history

    def full(self: Any, entry: dict[str, Any]) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(agent_mod.UpdateAgent, "_history", full)
    with pytest.raises(StateError, match="No space left"):
        env.agent().run()
    record = env.agent().record()
    assert (record["state"], record["settled"]) == ("committed", False)
    monkeypatch.setattr(agent_mod.UpdateAgent, "_history", real)
    assert env.agent().run()["result"] == "installed"
    assert [(h["action"], h["version"]) for h in _history(env)] == [
        ("installed", "1.0"), ("installed", "1.1")]
