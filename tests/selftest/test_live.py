"""The self-test on a RUNNING gateway: scratch copies leave live files out; the demo passes."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

from firmware.core import selftest as model
from firmware.gateway.selftest.livecopy import copy_state
from tests.conftest import ROOT, require
from tests.gateway.helpers import gateway_cmd, online, start_gateway, stop_gateway, wait_for
from tests.selftest.helpers import provisioned, run_area


def _live_files(state: Path) -> tuple[socket.socket, int, sqlite3.Connection]:
    """What a running gateway holds: its control socket, its lock, a database in WAL mode."""
    run = state / "run"
    run.mkdir(mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(run / "control.sock"))
    sock.listen(1)
    fd = os.open(run / "gateway.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    (run / "gateway.pid").write_text(str(os.getpid()))
    db = sqlite3.connect(state / "live.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (v TEXT)")
    db.execute("INSERT INTO t VALUES ('committed')")
    db.commit()  # in the -wal file only: no checkpoint while the connection stays open
    (state / ".half-written.json.tmp").write_text("{")
    return sock, fd, db


def test_scratch_copy_of_a_live_state_dir_leaves_live_files_out(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "keep.json").write_text("{}")
    sock, fd, db = _live_files(state)
    try:
        skipped = copy_state(state, tmp_path / "copy")
    finally:
        sock.close()
        os.close(fd)
    copy = tmp_path / "copy"
    assert (copy / "keep.json").read_text() == "{}"
    assert not (copy / "run" / "control.sock").exists()
    assert not (copy / "run" / "gateway.lock").exists()
    assert not (copy / "run" / "gateway.pid").exists()
    assert not (copy / ".half-written.json.tmp").exists()
    assert not (copy / "live.db-wal").exists()
    # The database is a consistent snapshot, WAL content included.
    rows = sqlite3.connect(copy / "live.db").execute("SELECT v FROM t").fetchall()
    db.close()
    assert rows == [("committed",)]
    assert any("control.sock" in s for s in skipped) and any("gateway.lock" in s for s in skipped)
    assert oct((copy / "run").stat().st_mode & 0o777) == oct(0o700)


def test_checks_on_scratch_copies_run_beside_a_live_socket_and_lock(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    sock, fd, db = _live_files(state)
    try:
        res = run_area(state, "admin")
    finally:
        sock.close()
        os.close(fd)
        db.close()
    for r in res.values():
        assert r.verdict != model.INCONCLUSIVE, (r.check_id, r.evidence)
        assert not any("Errno 6" in e for e in r.evidence), r.evidence


def test_readme_live_selftest_on_the_running_demo_passes_every_check(tmp_path: Path) -> None:
    require("netns")  # the firewall check loads the ruleset into a scratch namespace (root)
    state = tmp_path / "sim"
    proc = start_gateway(state)
    try:
        wait_for(state, lambda d: len(online(d)) >= 4, timeout=90)
        # The README's command, as an installer runs it next to the running gateway.
        run = subprocess.run(gateway_cmd("selftest", "--state-dir", str(state), "--json"),
                             cwd=ROOT, capture_output=True, text=True, timeout=240)
        report = json.loads(run.stdout)
        bad = [(r["id"], r["verdict"], r["evidence"]) for r in report["results"]
               if r["verdict"] not in (model.PASS, model.NOT_APPLICABLE)]
        assert bad == [] and run.returncode == 0, bad
        assert report["service_level"] == 3
        assert (state / "run" / "control.sock").is_socket()  # the live gateway was untouched
        # The first-use change left the new credential beside the site, 0600, never printed.
        cred = tmp_path / "sim-demo-site" / "gateways" / "sim-gateway.bundle.admin-credential"
        assert oct(cred.stat().st_mode & 0o777) == oct(0o600)
        assert "changed from the initial one" in cred.read_text()
        assert cred.read_text().strip().splitlines()[-1] not in run.stdout + run.stderr
    finally:
        code, err = stop_gateway(proc)
    assert code == 0, err


def test_an_inconclusive_check_says_why_and_how_to_make_it_decidable(tmp_path: Path) -> None:
    from firmware.gateway.selftest.report import build_report, render_table
    from firmware.gateway.selftest.runner import run_checks

    state = provisioned(tmp_path)
    results = run_checks(state, 3, None, "board")  # no board named, none recorded
    r = {x.check_id: x for x in results}["board.profile"]
    assert r.verdict == model.INCONCLUSIVE and "--board" in r.reason
    table = render_table(build_report(results, 3, state, None))
    assert "to decide: pass --board NAME" in table
    assert "fix:" not in table.split("board.profile: inconclusive")[1].split("\n\n")[0]
