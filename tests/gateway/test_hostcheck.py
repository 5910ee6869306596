"""`run` refuses a board profile whose hardware is not this host's before any service (the
firewall first) touches the host; the sim board's firewall never applies to the host."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from firmware.common.boards import load_board
from firmware.gateway.runtime.hostcheck import host_arch, mismatch
from tests.conftest import ROOT, require


def test_profiles_are_matched_against_the_host(tmp_path: Path) -> None:
    rpi4, sim = load_board("rpi4"), load_board("sim")
    none = tmp_path / "no-device-tree"
    assert "aarch64" in mismatch(rpi4, "x86_64", none)
    assert mismatch(rpi4, "aarch64", none) == ""  # qemu-user, containers: the arch decides
    assert mismatch(rpi4, "arm64", none) == ""
    assert mismatch(sim, "x86_64", none) == "" and mismatch(sim, "riscv64", none) == ""
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 5 Model B Rev 1.0\0")
    assert "Raspberry Pi 4" in mismatch(rpi4, "aarch64", model)
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert mismatch(rpi4, "aarch64", model) == ""
    assert host_arch("AMD64") == "x86_64"


def _in_netns(script: str) -> subprocess.CompletedProcess[str]:
    require("netns")
    require("nft")
    unshare = shutil.which("unshare") or "unshare"
    return subprocess.run([unshare, "--net", "--", "sh", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_run_with_a_foreign_board_profile_touches_no_firewall(tmp_path: Path) -> None:
    if host_arch() == "aarch64":
        return  # this host could be the board: nothing to refuse
    gw = "%s -m firmware.gateway.cli.main" % sys.executable
    proc = _in_netns("%s run --board rpi4 --state-dir %s --duration 1; echo rc=$?; "
                     "nft list tables" % (gw, tmp_path / "state"))
    assert "rc=1" in proc.stdout, proc.stdout + proc.stderr
    assert "board profile rpi4 is for aarch64 hardware" in proc.stderr
    assert "--board sim" in proc.stderr and "Traceback" not in proc.stderr
    assert "mamori" not in proc.stdout.split("rc=1", 1)[1]  # no table was loaded
    assert not (tmp_path / "state").exists()


def test_firewall_apply_of_the_sim_board_needs_a_namespace() -> None:
    gw = "%s -m firmware.gateway.cli.main" % sys.executable
    proc = _in_netns("%s firewall apply --board sim; echo rc=$?; nft list tables" % gw)
    assert "rc=1" in proc.stdout and "only inside a network namespace" in proc.stderr
    assert "mamori" not in proc.stdout.split("rc=1", 1)[1]
