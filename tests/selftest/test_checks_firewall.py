"""firewall.* checks (SR3-H-2, C4, UK6): pass on a healthy gateway, fail when the control breaks."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware.common.boards import load_board
from firmware.gateway.firewall import nft, posture
from firmware.gateway.firewall.policy import policy_for_board
from firmware.gateway.firewall.ruleset import build
from firmware.gateway.selftest.checks import firewall as fw_check
from tests.conftest import require
from tests.selftest import helpers
from tests.selftest.helpers import provisioned, run_area

REQS = ["SR3-H-2", "C4", "UK6"]


def run(state: Path, **options: object) -> dict:
    return run_area(state, "firewall", options=options)


def assert_fail(res: dict, check_id: str, needle: str) -> None:
    helpers.assert_fail(res, check_id, REQS, needle)


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace standing in for the one a gateway's firewall runs in."""
    require("netns")
    require("nft")
    name = "mst-fw-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _sim_ruleset() -> object:
    return build(policy_for_board(load_board("sim")))


def _scratch_namespaces() -> list[str]:
    """This process's self-test scratch namespaces (other test workers make their own)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    mine = "mamori-st-%d-" % os.getpid()
    return [line.split()[0] for line in out.splitlines() if line.startswith(mine)]


def test_sim_gateway_is_exercised_in_a_scratch_namespace(tmp_path: Path) -> None:
    require("netns")
    require("nft")
    before = _scratch_namespaces()
    res = run(provisioned(tmp_path))
    r = res["firewall.ruleset"]
    assert r.verdict == "pass", r.evidence
    assert any("scratch namespace" in e for e in r.evidence)
    assert any("drift detector flagged an added rule" in e for e in r.evidence)
    assert res["firewall.listeners"].verdict == "pass"
    assert _scratch_namespaces() == before == []  # the scratch namespace is gone


def test_running_ruleset_flushed_or_extended(tmp_path: Path, netns: str) -> None:
    state = provisioned(tmp_path)
    posture.apply(_sim_ruleset(), netns)  # type: ignore[arg-type]
    r = run(state, firewall_netns=netns)["firewall.ruleset"]
    assert r.verdict == "pass", r.evidence
    assert any(f"namespace {netns}" in e for e in r.evidence)
    nft.run_nft(["add", "rule", "inet", "mamori", "input", "tcp", "dport", "23", "accept"],
                netns)
    assert_fail(run(state, firewall_netns=netns), "firewall.ruleset", "rule added")
    nft.run_nft(["flush", "ruleset"], netns)
    assert_fail(run(state, firewall_netns=netns), "firewall.ruleset",
                "is not loaded (flushed or never applied)")


def test_undeclared_listener_in_the_gateway_namespace(tmp_path: Path, netns: str) -> None:
    state = provisioned(tmp_path)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-c",
                             "import socket,sys,time;s=socket.socket();"
                             "s.bind(('0.0.0.0',2323));s.listen();print('ready',flush=True);"
                             "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert_fail(run(state, firewall_netns=netns), "firewall.listeners",
                    "undeclared listener tcp/2323 on 0.0.0.0")
    finally:
        proc.kill()
        proc.wait()
    assert run(state, firewall_netns=netns)["firewall.listeners"].verdict == "pass"


def test_undeclared_listener_of_the_gateway_process(tmp_path: Path) -> None:
    state = provisioned(tmp_path)
    (state / "run").mkdir(exist_ok=True, mode=0o700)
    (state / "run" / "gateway.pid").write_text(str(os.getpid()))
    with socket.socket() as lo:
        lo.bind(("127.0.0.1", 0))
        lo.listen()
        r = run(state)["firewall.listeners"]
        assert r.verdict == "pass", r.evidence  # loopback-only: unreachable from other hosts
        with socket.socket() as wild:
            wild.bind(("0.0.0.0", 0))
            wild.listen()
            port = wild.getsockname()[1]
            assert_fail(run(state), "firewall.listeners", f"undeclared listener tcp/{port}")


def test_without_cap_net_admin_it_is_inconclusive(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nft, "has_cap_net_admin", lambda: False)
    r = run(provisioned(tmp_path))["firewall.ruleset"]
    assert r.verdict == "inconclusive" and "CAP_NET_ADMIN" in r.evidence[0]


def test_a_generator_that_accepts_by_default_fails(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def lax(policy: object) -> object:
        rs = build(policy)  # type: ignore[arg-type]
        chains = dict(rs.chains, input=dict(rs.chains["input"], policy="accept"))
        return dataclasses.replace(rs, chains=chains)

    monkeypatch.setattr(fw_check, "build", lax)
    assert_fail(run(provisioned(tmp_path)), "firewall.ruleset",
                "chain input: policy is 'accept'")
