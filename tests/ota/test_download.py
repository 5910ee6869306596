"""The bundle download: one streamed request, resumed from the last synced verified chunk after a
drop (whether or not the server honours Range), progress recorded in batches, and never more
bytes accepted than were signed."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware.core.errors import IntegrityError, ProtocolError
from firmware.gateway.update import download as dl
from firmware.gateway.update.fetch import Fetcher
from host_tools.release.repo import copy_public
from host_tools.release.serve import RepoHandler
from tests.ota.helpers import CHUNK, Env, make_payload, tree_digest


def _publish(env: Env, version: str, size: int) -> None:
    env.repo.publish("sim", version, make_payload(env.tmp, version, size=size), chunk_size=CHUNK)


def _bundle(env: Env) -> tuple[str, bytes]:
    path = env.bundle_url_path({})
    return path, (env.repo.path / path.lstrip("/")).read_bytes()


@pytest.mark.parametrize("ignore_range", [False, True])
def test_drop_mid_stream_resumes_from_last_verified_chunk(
        env: Env, monkeypatch: pytest.MonkeyPatch, ignore_range: bool) -> None:
    env.publish("1.0")
    env.agent().run()
    _publish(env, "1.1", 40 * CHUNK)
    path, real = _bundle(env)
    assert len(real) > 10 * CHUNK
    ranges: list[str] = []
    serve = RepoHandler.do_GET

    def do_get(self: RepoHandler) -> None:
        if self.path != path:
            return serve(self)
        ranges.append(self.headers.get("Range", ""))
        if len(ranges) > 1:
            return serve(self)
        # The first answer promises the whole bundle, then the connection drops mid-chunk 3.
        self.send_response(200)
        self.send_header("Content-Length", str(len(real)))
        self.end_headers()
        self.wfile.write(real[:2 * CHUNK + 500])
        self.close_connection = True

    monkeypatch.setattr(RepoHandler, "do_GET", do_get)
    with pytest.raises(ProtocolError, match="interrupted"):
        env.agent().run()
    assert env.agent().record()["chunks_done"] == 2
    if ignore_range:
        env.server.raw_paths.add(path)
    res = env.agent().run()
    assert res["result"] == "installed" and res["version"] == "1.1"
    # one request per attempt; the second starts at the first chunk not yet verified
    assert ranges == ["bytes=0-%d" % (len(real) - 1),
                      "bytes=%d-%d" % (2 * CHUNK, len(real) - 1)]


def test_offline_bundle_longer_than_signed_is_refused(env: Env, tmp_path: Path) -> None:
    env.publish("1.0")
    env.agent().run()
    env.publish("1.1")
    path, _ = _bundle(env)
    stick = tmp_path / "stick"
    copy_public(env.repo.path, stick)
    with open(stick / path.lstrip("/"), "ab") as f:
        f.write(b"\0" * 100)
    inactive = "a"
    before = tree_digest(env.slot(inactive))
    with pytest.raises(IntegrityError, match="more than the signed.*endless-data"):
        env.agent(source=str(stick)).run()
    assert tree_digest(env.slot(inactive)) == before
    assert env.agent().record()["state"] == "downloading"


def test_progress_is_recorded_in_batches_and_always_at_the_end(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish(env, "1.0", 20 * CHUNK + 7)
    rel = env.repo.current("sim")
    assert rel is not None
    path, real = _bundle(env)
    n = len(rel["chunks"])
    target = {"url": env.url + path, "length": len(real), "chunk_size": CHUNK,
              "chunks": rel["chunks"]}
    monkeypatch.setattr(dl, "SYNC_BYTES", 4 * CHUNK)
    monkeypatch.setattr(dl, "SYNC_SECONDS", 3600.0)
    marks: list[int] = []
    staging = tmp_path / "staging" / "bundle.part"
    dl.download(Fetcher(), target, staging, 0, marks.append)
    assert staging.read_bytes() == real
    assert marks == sorted(set(marks)) and marks[0] >= 4 and marks[-1] == n
    assert len(marks) < n  # batched: not one sync per chunk
