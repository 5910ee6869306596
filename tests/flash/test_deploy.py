"""Deploys to a real MicroPython interpreter (WebAssembly port) over a pseudo-terminal."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

from tests.conftest import ROOT, require
from tests.flash.conftest import DEV, deploy_json, mamori
from tests.flash.target import WasmTarget

LIST_ALL = """
import os,json
def walk(d,out):
    try:names=os.listdir(d)
    except OSError:return out
    for n in names:
        p=d.rstrip('/')+'/'+n
        if os.stat(p)[0]&0x4000:walk(p,out)
        else:out.append(p)
    return out
top=['/main.py'] if 'main.py' in os.listdir('/') else []
print(json.dumps(walk('/slot_a',[])+walk('/state',[])+top))
"""


def device_files(t: WasmTarget) -> list[str]:
    """Every file under the slot and the state dir, listed by our own code on the target."""
    return json.loads(t.exec_direct(LIST_ALL).strip().splitlines()[-1])


def device_sha256(t: WasmTarget, paths: list[str]) -> dict[str, str]:
    """SHA-256 of files on the target computed there by independent code."""
    code = ("import hashlib,binascii,json\nr={}\nfor p in %s:\n"
            " r[p]=binascii.hexlify(hashlib.sha256(open(p,'rb').read()).digest()).decode()\n"
            "print(json.dumps(r))" % json.dumps(paths))
    return json.loads(t.exec_direct(code).strip().splitlines()[-1])


def local_expected(env: dict[str, str]) -> dict[str, str]:
    """What the board should hold: built here, hashed here."""
    os.environ["MAMORI_BOARDS_DIR"] = env["MAMORI_BOARDS_DIR"]
    from firmware.common.boards import load_board
    from host_tools.flash import payload

    files = payload.build(load_board("mp-sim"))
    return {f.path: hashlib.sha256(f.data).hexdigest() for f in files}


def test_files_arrive_verified_and_selfcheck_runs(env: dict[str, str], target: WasmTarget,
                                                  tmp_path: Path) -> None:
    bundle = tmp_path / "gw.bundle"
    bundle.write_bytes(os.urandom(3000))
    site = tmp_path / "site"
    site.mkdir()
    out = deploy_json(env, target.port, "--bundle", str(bundle), "--site", str(site))
    assert out["encoding"] == "literal"  # this port's base64 decoder is Python code: slow
    assert out["transferred_bytes"] == sum(f["bytes"] for f in out["files"]) > 10_000
    assert all(f["transferred"] for f in out["files"])
    paths = [f["path"] for f in out["files"]]
    assert "/slot_a/firmware/core/frames.mpy" in paths and paths[-1] == "/slot_a/manifest.json"
    # Independent check on the target: same files, same SHA-256 as built locally.
    on_device = device_sha256(target, paths)
    expected = {f["path"]: f["sha256"] for f in out["files"]}
    assert on_device == expected
    local = local_expected(env)
    for p, h in local.items():
        if not p.endswith(("installation.bundle", "manifest.json")):
            assert on_device[p] == h, p
    assert on_device["/state/installation.bundle"] == hashlib.sha256(
        bundle.read_bytes()).hexdigest() == out["bundle_sha256"]
    assert sorted(device_files(target)) == sorted(paths)  # no temp files left behind
    # The deployed (compiled) core runs its self-check on the target.
    assert out["selfcheck"]["ok"] and out["selfcheck"]["line"].startswith("selfcheck ok")
    got = target.exec_direct("import sys\nsys.path.insert(0,'/slot_a')\n"
                             "from firmware.core import selfcheck\n"
                             "print(selfcheck.__file__, selfcheck.line(selfcheck.run()))")
    assert "/slot_a/firmware/core/selfcheck.mpy selfcheck ok: frames hmac sha256" in got
    assert out["raw_paste"].startswith("off: raw-paste is known to be broken on webassembly")
    assert target.alive() and target.resets == 0  # --no-reset: never soft-reset
    rows = [json.loads(x) for x in (site / "flash-inventory.jsonl").read_text().splitlines()]
    assert rows[0]["board"] == "mp-sim" and rows[0]["operator"] == "line-7"
    assert rows[0]["image_sha256"] == out["manifest_sha256"]
    assert rows[0]["bundle_sha256"] == out["bundle_sha256"] and rows[0]["time"].endswith("Z")
    assert bundle.read_bytes().hex() not in (site / "flash-inventory.jsonl").read_text()


def test_second_deploy_transfers_nothing_and_repairs_a_changed_file(
        env: dict[str, str], target: WasmTarget) -> None:
    first = deploy_json(env, target.port, "--encoding", "base64")
    assert first["encoding"] == "base64"
    second = deploy_json(env, target.port)
    assert second["transferred_bytes"] == 0
    assert not any(f["transferred"] for f in second["files"])
    assert [f["sha256"] for f in second["files"]] == [f["sha256"] for f in first["files"]]
    target.exec_direct("f=open('/slot_a/firmware/core/errors.mpy','wb');f.write(b'junk');"
                       "f.close()")
    third = deploy_json(env, target.port)
    sent = [f["path"] for f in third["files"] if f["transferred"]]
    assert sent == ["/slot_a/firmware/core/errors.mpy"]
    ok = mamori(env, "flash", "verify", "--board", "mp-sim", "--port", target.port, "--json")
    assert ok.returncode == 0, ok.stderr
    target.exec_direct("f=open('/slot_a/firmware/core/frames.mpy','ab');f.write(b'x');f.close()")
    bad = mamori(env, "flash", "verify", "--board", "mp-sim", "--port", target.port)
    assert bad.returncode == 5 and "frames.mpy" in bad.stderr


def test_interrupted_deploy_leaves_no_partial_file_under_a_final_name(
        env: dict[str, str], target: WasmTarget) -> None:
    # Cut the line (as if unplugged) part-way through the transfer, then SIGKILL the tool.
    target.cut_after = 40_000
    proc = subprocess.Popen([sys.executable, "-m", "host_tools.cli.main", "flash", "deploy", DEV,
                             "--board", "mp-sim", "--port", target.port, "--no-reset",
                             "--quiet", "--timeout", "30"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert target.cut.wait(60), "the deploy never reached the cut point"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    expected = local_expected(env)
    present = device_files(target)
    finals = [p for p in present if not p.endswith(".mamori-tmp")]
    temps = [p for p in present if p.endswith(".mamori-tmp")]
    assert finals and len(finals) < len(expected)  # really interrupted mid-way
    assert len(temps) <= 1  # a file being written sits under its temporary name only
    got = device_sha256(target, finals)
    for p in finals:
        assert got[p] == expected[p], "partial or wrong file under final name " + p
    assert "/slot_a/manifest.json" not in finals
    # Reconnect: the next deploy finishes the job and removes the stale temp file.
    target.cut_after = None
    target.cut.clear()
    out = deploy_json(env, target.port)
    assert 0 < out["transferred_bytes"] < sum(f["bytes"] for f in out["files"])
    assert sorted(device_files(target)) == sorted(f["path"] for f in out["files"])


def test_verification_mismatch_is_reported_and_nothing_is_renamed(
        env: dict[str, str], target: WasmTarget) -> None:
    target.corrupt = True  # one base64 character of the first chunk is changed on the wire
    p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", target.port,
               "--no-reset", "--quiet", "--json", "--encoding", "base64")
    assert p.returncode == 5, p.stderr
    assert "verification failed" in p.stderr and json.loads(p.stdout)["error"] == "integrity"
    assert device_files(target) == []  # neither the final name nor the temp file exist


def test_boot_noise_and_a_board_that_survives_resets(env: dict[str, str]) -> None:
    require("node")
    with WasmTarget(noise=b"\x00\xff rst:0x1 boot noise\r\nMicroPython banner\r\n>>> ",
                    survive_reset=True) as t:
        p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", t.port, "--quiet",
                   "--json")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["selfcheck"]["ok"]
        assert t.resets == 2  # one soft reset on entry, one at the end to boot the firmware


def test_raw_paste_misbehaviour_detected_and_plain_raw_repl_used(
        env: dict[str, str]) -> None:
    require("node")
    with WasmTarget(paste="recoverable") as t:
        out = deploy_json(env, t.port, "--raw-paste", "on")
        assert "granted raw-paste window it had not freed" in out["raw_paste"]
        assert out["selfcheck"]["ok"]
        assert device_sha256(t, ["/slot_a/manifest.json"])["/slot_a/manifest.json"] == \
            out["files"][-1]["sha256"]


def test_real_target_raw_paste_wedge_is_a_clear_error(env: dict[str, str],
                                                      target: WasmTarget) -> None:
    # The WebAssembly port answers R\x01 and then spins forever: detected, reported clearly.
    p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", target.port,
               "--no-reset",
               "--quiet", "--raw-paste", "on", "--attempts", "2", "--timeout", "3")
    assert p.returncode == 4, p.stderr
    assert "misbehaved in raw-paste mode" in p.stderr and "--raw-paste off" in p.stderr


def test_wrong_board(env: dict[str, str], target: WasmTarget) -> None:
    p = mamori(env, "flash", "deploy", DEV, "--board", "rpi4", "--port", target.port)
    assert p.returncode == 2 and "not MicroPython" in p.stderr and "flash image" in p.stderr
    p = mamori(env, "flash", "deploy", DEV, "--board", "pico-w", "--port", target.port,
               "--no-reset",
               "--quiet")
    assert p.returncode == 2 and "reports platform 'webassembly'" in p.stderr
    p = mamori(env, "flash", "deploy", DEV, "--board", "nope", "--port", target.port)
    assert p.returncode == 1 and "unknown board" in p.stderr
    assert target.alive()


def test_port_absent_busy_and_silent(env: dict[str, str], target: WasmTarget) -> None:
    p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", "/dev/ttyNOPE9")
    assert p.returncode == 3 and "does not exist" in p.stderr
    fd = os.open(target.port, os.O_RDWR | os.O_NOCTTY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what mpremote / another deploy holds
        p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", target.port)
        assert p.returncode == 3 and "busy" in p.stderr
    finally:
        os.close(fd)
    master, slave = os.openpty()  # a port with nothing answering behind it
    tty.setraw(slave)
    try:
        t0 = time.monotonic()
        p = mamori(env, "flash", "deploy", DEV, "--board", "mp-sim", "--port", os.ttyname(slave),
                   "--attempts", "2", "--no-reset")
        assert p.returncode == 4 and "does not answer the raw REPL (2 attempts)" in p.stderr
        assert time.monotonic() - t0 < 60
    finally:
        os.close(master)
        os.close(slave)
